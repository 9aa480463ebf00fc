"""Converting a group of files as one run: join, convert once, split, drop each file's unused imports."""

from __future__ import annotations

import ast
import dataclasses
import os

import libcst as cst

from accel_convert.convert import convert_source
from accel_convert.edits.unused_imports import drop_imports, made_unused
from accel_convert.model import SETUP_CODE, Change, ConvertError, Diagnostic, Options, Result
from accel_convert.project.added_imports import added_imports, import_needed, without_names
from accel_convert.project.combined import combine
from accel_convert.project.free_names import unbound_names
from accel_convert.project.groups import Group


@dataclasses.dataclass(frozen=True)
class ProjectError(ConvertError):
    """A file of a group could not be converted; ``path`` names it."""

    path: str = ""


def convert_group(
    group: Group, texts: dict[str, str], options: Options = Options(), outside: frozenset[str] = frozenset()
) -> dict[str, Result]:
    """Each file of ``group`` converted (texts in ``texts``, path -> source), changes and diagnostics on its own lines;
    ``outside``: files converted apart (or left as they are) whose calls into the group must keep working.

    Raises ``ConvertError`` (with the file in ``path``) when a file of the group does not parse.
    """
    joined = combine(group, texts, outside)
    try:
        result = convert_source(joined.text, options, drop_unused_imports=False)
    except ConvertError as error:
        path, line = joined.locate(error.line) if error.line else (group.entry, 0)
        raise ProjectError(error.message, line, error.col, path) from None
    per_file = {path: ([], []) for path in group.files}
    for change in result.changes:
        path, line = joined.locate(change.line)
        message = joined.original_lines(joined.original_names(change.message, path), path)
        per_file[path][0].append(dataclasses.replace(change, line=line, message=message))
    for diagnostic in result.diagnostics:
        path, line = joined.locate(diagnostic.line)
        message = joined.original_lines(joined.original_names(diagnostic.message, path), path)
        per_file[path][1].append(dataclasses.replace(diagnostic, line=line, message=message))
    if not result.changed:
        return {path: Result(texts[path], (), tuple(per_file[path][1])) for path in group.files}
    converted = joined.split(result.text)
    entry = group.entry
    added = added_imports(texts[entry], converted[entry])
    out = {}
    for path in group.files:
        text = _without_unused_imports(texts[path], converted[path], path)
        missing = unbound_names(text) - unbound_names(texts[path])
        if missing and path != entry:  # a name the conversion imported among the entry's imports
            fixed = import_needed(text, missing, added)
            if fixed is not None:
                text, line = fixed
                per_file[path][0].append(Change(SETUP_CODE, line, f"import {_names(missing)} (used in this file)"))
                missing = set()
        if missing:
            return _declined(group, texts, per_file, path, sorted(missing))
        out[path] = text
    unread = {alias.asname or alias.name for node in added for alias in node.names} - _read(out[entry])
    if unread:
        out[entry] = without_names(out[entry], unread, added)
        per_file[entry][0][:] = [c for c in per_file[entry][0] if not (c.code == SETUP_CODE and c.message.startswith("import `"))]
    results = {}
    for path in group.files:
        changes, diagnostics = per_file[path]
        results[path] = Result(out[path], tuple(changes) if out[path] != texts[path] else (), tuple(diagnostics))
    return results


def _names(names: set[str]) -> str:
    return ", ".join(f"`{name}`" for name in sorted(names))


def _read(text: str) -> set[str]:
    return {node.id for node in ast.walk(ast.parse(text)) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}


def _declined(group: Group, texts: dict[str, str], per_file, path: str, missing: list[str]) -> dict[str, Result]:
    """Every file as it was: converted apart, ``path`` would read names only the joined source defines."""
    names = ", ".join(f"`{name}`" for name in missing)
    note = Diagnostic(
        SETUP_CODE,
        1,
        1,
        f"nothing converted: {os.path.basename(path)}, converted as one run with "
        f"{', '.join(os.path.basename(p) for p in group.files if p != path)}, would read {names}, which it does not "
        "define; convert the files by hand or report this project",
    )
    return {
        name: Result(texts[name], (), tuple([*per_file[name][1], note] if name == group.entry else per_file[name][1]))
        for name in group.files
    }


def _without_unused_imports(original: str, converted: str, path: str) -> str:
    try:
        unused = made_unused(original, ast.parse(converted))
    except SyntaxError as error:
        raise ProjectError(
            f"internal error: the converted file does not parse ({error.msg}); please report this project",
            error.lineno or 0,
            error.offset or 0,
            path,
        ) from None
    return drop_imports(cst.parse_module(converted), unused).code if unused else converted


def convert_cluster(cluster: list[Group], texts: dict[str, str], options: Options = Options()) -> dict[str, Result]:
    """The files of groups that share modules, each group converted as one run; a shared module that would come out
    differently for two entries leaves every file of the cluster as it is, with a diagnostic on each entry."""
    results: dict[str, Result] = {}
    differs: dict[str, list[str]] = {}
    grouped = {path for group in cluster for path in group.files}
    loose = frozenset(path for group in cluster for users in group.outside.values() for path in users if path not in grouped)
    converted = [(group, convert_group(group, texts, options, loose)) for group in cluster]
    # a group that changes nothing (a script that only uses the shared modules) does not decide how they convert:
    # the groups that do are converted again with its files among those whose calls must keep working
    bystanders = {group.entry for group, out in converted if not any(result.changed for result in out.values())}
    if bystanders:
        kept = loose | {path for group in cluster if group.entry in bystanders for path in group.files}
        converted = [
            (group, out if group.entry in bystanders or not _called_by(group, kept - loose)
             else convert_group(group, texts, options, kept - set(group.files)))
            for group, out in converted
        ]
    converted.sort(key=lambda pair: pair[0].entry in bystanders)
    for group, out in converted:
        for path, result in out.items():
            known = results.get(path)
            if known is None:
                results[path] = result
            elif known.text != result.text:
                if group.entry not in bystanders:
                    differs.setdefault(path, []).append(group.entry)
            else:  # the same module, seen from another entry: what either run found stands
                extra = tuple(d for d in result.diagnostics if d not in known.diagnostics)
                results[path] = dataclasses.replace(known, diagnostics=known.diagnostics + extra)
    if not differs:
        return results
    path, later = next(iter(differs.items()))
    users = [group.entry for group in cluster if path in group.files and group.entry not in later][:1] + later
    note = (
        f"nothing converted: {os.path.basename(path)} is used by {', '.join(os.path.basename(entry) for entry in users)}, "
        "and each would need it converted differently; convert one entry script with its modules at a time "
        "(accel-convert ENTRY.py MODULE.py ...) and adapt the others by hand"
    )
    entries = {group.entry for group in cluster}
    return {
        name: Result(texts[name], (), (Diagnostic(SETUP_CODE, 1, 1, note),) if name in entries else ())
        for name in results
    }


def _called_by(group: Group, files: set[str]) -> bool:
    """Some file of ``files`` (not of ``group``) uses a definition of ``group``."""
    return any(user in files and user not in group.files for users in group.outside.values() for user in users)


def convert_project(texts: dict[str, str], root: str, options: Options = Options()) -> dict[str, Result]:
    """Every file of a project (``texts``: path -> source, ``root`` its folder) converted: the files of each group
    together, the others one by one."""
    from accel_convert.project.groups import clusters, find_groups

    groups, _ = find_groups(texts, root)
    results: dict[str, Result] = {}
    for cluster in clusters(groups):
        results.update(convert_cluster(cluster, texts, options))
    for path, text in texts.items():
        if path not in results:
            results[path] = convert_source(text, options)
    return results
