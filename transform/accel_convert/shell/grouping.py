"""Which of the files a run converts belong to one project group, read cheaply: only files the pre-filter says may
hold training code are parsed (with Python's own parser), so that a walk over a large tree stays fast."""

from __future__ import annotations

import os
from collections.abc import Sequence

from accel_convert.model import SETUP_CODE, Diagnostic


def project_root(paths: Sequence[str]) -> str:
    """The folder top-level imports are resolved against besides each file's own: the directory given, else the
    folder holding every file named."""
    folders = [os.path.abspath(path if os.path.isdir(path) else os.path.dirname(path) or ".") for path in paths]
    return os.path.commonpath(folders) if folders else os.getcwd()


def group_files(files: Sequence[str], root: str) -> tuple[list[tuple[str, ...]], dict[str, Diagnostic]]:
    """The clusters of project groups among ``files`` (each a tuple of paths, entries first) and, per entry that
    could not be grouped, the diagnostic saying why."""
    from accel_convert.analysis.prefilter import may_need_conversion
    from accel_convert.project.groups import may_join_a_run
    from accel_convert.shell.files import SourceError, read_source

    texts, others = {}, {}
    for path in files:
        try:
            text = read_source(path).text
        except SourceError:
            continue  # reported when the file itself is converted
        (texts if may_need_conversion(text) or may_join_a_run(text) else others)[path] = text
    if not texts:
        return [], {}
    # an entry script need not hold training code itself (its loop may all be in a trainer): a file naming a
    # training module's name in a from-import may be one
    stems = {os.path.splitext(os.path.basename(path))[0] for path in texts}
    stems |= {os.path.basename(os.path.dirname(path)) for path in texts if path.endswith("__init__.py")}
    for path, text in others.items():
        if "from " in text and any(stem in text for stem in stems):
            texts[path] = text
    if len(texts) < 2:
        return [], {}
    from accel_convert.project.groups import cluster_files, clusters, find_groups

    groups, refusals = find_groups(texts, root)
    notes = {
        refusal.path: Diagnostic(
            SETUP_CODE,
            refusal.line,
            1,
            f"not converted together with the modules it imports: {refusal.reason}; convert the entry script and "
            "its modules on their own (accel-convert ENTRY.py MODULE.py ...)",
        )
        for refusal in refusals
    }
    return [cluster_files(cluster) for cluster in clusters(groups)], notes


def suggestion(path: str) -> Diagnostic | None:
    """For a file converted alone: when it and the project modules it imports would form a group, a diagnostic
    naming the functions and classes it uses from them and the command that converts them together."""
    from accel_convert.analysis.prefilter import may_need_conversion
    from accel_convert.shell.files import SourceError, read_source

    try:
        text = read_source(path).text
    except SourceError:
        return None
    if not may_need_conversion(text):
        return None
    from accel_convert.project.groups import find_groups, imported_modules, linked_names

    root = os.path.dirname(os.path.abspath(path))
    texts = {path: text}
    for module in imported_modules(path, text, root):
        try:
            texts[module] = read_source(module).text
        except SourceError:
            continue
    groups, _ = find_groups(texts, root) if len(texts) > 1 else ([], [])
    group = next((group for group in groups if group.entry == path), None)
    if group is None:
        return None
    line, names = linked_names(group, texts, root)
    others = [member if os.path.isabs(path) else os.path.relpath(member) for member in group.files[1:]]
    command = " ".join(["accel-convert", _quote(path), *map(_quote, others)])
    where = ", ".join(others)
    return Diagnostic(
        SETUP_CODE,
        line,
        1,
        f"{', '.join(f'`{name}`' for name in names)} {'is' if len(names) == 1 else 'are'} defined in {where}, part of "
        f"this training run: convert the files together with `{command}`",
    )


def _quote(path: str) -> str:
    import shlex

    return shlex.quote(path)
