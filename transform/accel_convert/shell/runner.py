"""Convert files one by one or in parallel: read, convert, write atomically (convert_source has already checked
that its output parses).

Every file gets a ``FileReport``; a file that fails never stops the others. The converter (and libcst with it)
is imported only for a file that the cheap pre-filter says may need converting; a file named explicitly that the
pre-filter skips is still checked for syntax errors (by Python's own parser, which is cheap).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import NamedTuple

from accel_convert.model import Change, ConvertError, Diagnostic, Options, Result, python_syntax_error
from accel_convert.shell.diffing import unified_diff
from accel_convert.shell.files import (
    Source,
    SourceError,
    decode_source,
    encode_source,
    read_source,
    refuse_notebook,
    write_all_atomic,
    write_atomic,
)
from accel_convert.shell.suppress import split


class FileReport(NamedTuple):
    """What happened to one file. ``error`` is a full message (with the path); ``output`` holds the converted
    bytes when the file changed; ``diff`` is filled when asked for, to be written in ``diff_encoding`` (the
    file's own, so that `git apply` finds its lines byte for byte). ``diagnostics`` are those that stand;
    ``suppressed`` those silenced by a comment or per-file-ignores, each with what silenced it. A named tuple: it is
    created at import time far more cheaply than a dataclass, and a one-file run pays for every import."""

    path: str
    changed: bool = False
    changes: tuple[Change, ...] = ()
    diagnostics: tuple[Diagnostic, ...] = ()
    suppressed: tuple[tuple[Diagnostic, str], ...] = ()
    diff: str = ""
    diff_encoding: str = "utf-8"
    output: bytes | None = None
    error: str | None = None


def convert_text(text: str, options: Options, strict: bool = False) -> Result:
    """Run the converter on ``text``, skipping the libcst import when the pre-filter finds nothing to do; with
    ``strict`` (a file named explicitly), such a file must still parse."""
    from accel_convert.analysis.prefilter import may_need_conversion

    if not may_need_conversion(text):
        error = python_syntax_error(text) if strict else None
        if error is not None:
            raise error
        return Result(text)
    from accel_convert.convert import convert_source

    return convert_source(text, options)


def convert_decoded(
    source: Source,
    path: str,
    options: Options,
    diff: bool,
    strict: bool = False,
    file_ignores: tuple[tuple[str, frozenset[str]], ...] = (),
) -> FileReport:
    """Convert one decoded file; errors come back in the report, not as exceptions. ``file_ignores``: the
    per-file-ignores (pattern, codes) that match the file."""
    try:
        result = convert_text(source.text, options, strict)
        diagnostics, suppressed = split(result.diagnostics, source.text, file_ignores)
        if result.text == source.text:
            return FileReport(path, diagnostics=diagnostics, suppressed=suppressed)
        output = encode_source(result.text, source.encoding)
    except ConvertError as exc:
        return FileReport(path, error=exc.format(path))
    except SourceError as exc:
        return FileReport(path, error=exc.format(path))
    except Exception as exc:  # a bug in a rule must not take the other files down
        return FileReport(path, error=f"{path}: internal error: {type(exc).__name__}: {exc}")
    return FileReport(
        path,
        changed=True,
        changes=result.changes,
        diagnostics=diagnostics,
        suppressed=suppressed,
        diff=unified_diff(source.on_disk(source.text), source.on_disk(result.text), path) if diff else "",
        diff_encoding=source.byte_encoding,
        output=output,
    )


def convert_bytes(
    data: bytes, path: str, options: Options, diff: bool, file_ignores: tuple[tuple[str, frozenset[str]], ...] = ()
) -> FileReport:
    """Decode and convert the content of a file (used for stdin, which counts as a file named explicitly)."""
    try:
        refuse_notebook(path)
        source = decode_source(data)
    except SourceError as exc:
        return FileReport(path, error=exc.format(path))
    return convert_decoded(source, path, options, diff, True, file_ignores)


def convert_file(
    path: str,
    options: Options,
    write: bool,
    diff: bool,
    strict: bool = False,
    file_ignores: tuple[tuple[str, frozenset[str]], ...] = (),
) -> FileReport:
    """Convert the file at ``path``, rewriting it in place when ``write`` and something changed. The report leaves
    ``output`` out: the bytes are on disk or not wanted, and need not travel back from a worker process."""
    try:
        refuse_notebook(path)
        source = read_source(path)
    except SourceError as exc:
        return FileReport(path, error=exc.format(path))
    report = convert_decoded(source, path, options, diff, strict, file_ignores)
    if write and report.changed:
        try:
            write_atomic(path, report.output)
        except SourceError as exc:
            return FileReport(path, error=exc.format(path))
    return report._replace(output=None)


def convert_group_files(
    files: tuple[str, ...],
    root: str,
    options: Options,
    write: bool,
    diff: bool,
    ignores: dict[str, tuple[tuple[str, frozenset[str]], ...]],
) -> list[FileReport]:
    """Convert the files of one cluster of project groups (entry scripts and the modules they import, ``root`` the
    project's folder), each group as one run; they are written all or none. When a file cannot be read, or the files
    no longer form that cluster, each is converted alone; ``ignores``: the per-file-ignores that match each file."""
    from accel_convert.project.conversion import ProjectError, convert_cluster
    from accel_convert.project.groups import cluster_files, clusters, find_groups

    try:
        sources = {path: read_source(path) for path in files}
    except SourceError:
        return [convert_file(path, options, write, diff, True, ignores.get(path, ())) for path in files]
    texts = {path: source.text for path, source in sources.items()}
    groups, _ = find_groups(texts, root)
    cluster = next((cluster for cluster in clusters(groups) if cluster_files(cluster) == files), None)
    if cluster is None:  # the files changed since they were grouped
        return [convert_file(path, options, write, diff, True, ignores.get(path, ())) for path in files]
    try:
        results = convert_cluster(cluster, texts, options)
    except ProjectError as exc:
        return _group_failed(files, exc.path, exc.format(exc.path), "could not be converted")
    except Exception as exc:  # a bug in a rule must not take the other files down
        return [FileReport(path, error=f"{path}: internal error: {type(exc).__name__}: {exc}") for path in files]
    reports = []
    for path in files:
        source, result = sources[path], results[path]
        diagnostics, suppressed = split(result.diagnostics, source.text, ignores.get(path, ()))
        if result.text == source.text:
            reports.append(FileReport(path, diagnostics=diagnostics, suppressed=suppressed))
            continue
        try:
            output = encode_source(result.text, source.encoding)
        except SourceError as exc:
            return _group_failed(files, path, exc.format(path), "could not be converted")
        reports.append(
            FileReport(
                path,
                changed=True,
                changes=result.changes,
                diagnostics=diagnostics,
                suppressed=suppressed,
                diff=unified_diff(source.on_disk(source.text), source.on_disk(result.text), path) if diff else "",
                diff_encoding=source.byte_encoding,
                output=output,
            )
        )
    if write:
        try:
            write_all_atomic([(report.path, report.output) for report in reports if report.changed])
        except SourceError as exc:
            return _group_failed(files, exc.path, exc.format(exc.path), "could not be written")
    return [report._replace(output=None) for report in reports]


def _group_failed(files: tuple[str, ...], culprit: str, error: str, what: str) -> list[FileReport]:
    """Every file of a group reported unconverted: ``culprit`` with its ``error``, the others naming it."""
    return [
        FileReport(
            path,
            error=error
            if path == culprit
            else f"{path}: error: not converted: {culprit} {what}, and the files of one project change together or not at all",
        )
        for path in files
    ]


def convert_files(
    paths: Sequence[str],
    options: Options,
    write: bool,
    diff: bool,
    jobs: int,
    explicit: Collection[str] = (),
    file_ignores: Callable[[str], tuple[tuple[str, frozenset[str]], ...]] | None = None,
    groups: Sequence[tuple[str, ...]] = (),
    root: str = ".",
) -> Iterator[FileReport]:
    """Reports for ``paths`` in their order, the files of each of ``groups`` (project groups under ``root``) together
    where the first of them comes; with ``jobs > 1`` and several units, they are converted in worker processes. The
    ``explicit`` ones (named on the command line) must parse even without training code; ``file_ignores(path)``
    gives the per-file-ignores that match a file."""
    explicit = frozenset(explicit)
    ignores = {path: file_ignores(path) if file_ignores else () for path in paths}
    group_of = {path: group for group in groups for path in group}
    units, started = [], set()
    for path in paths:
        group = group_of.get(path)
        if group is None:
            units.append((convert_file, (path, options, write, diff, path in explicit, ignores[path])))
        elif group not in started:
            started.add(group)
            units.append((convert_group_files, (group, root, options, write, diff, {p: ignores.get(p, ()) for p in group})))

    def reports(unit, outcome) -> list[FileReport]:
        return outcome if unit[0] is convert_group_files else [outcome]

    workers = min(jobs, len(units))
    if workers <= 1:
        for unit in units:
            yield from reports(unit, unit[0](*unit[1]))
        return
    from concurrent.futures import ProcessPoolExecutor  # only paid for by runs with several files
    from concurrent.futures.process import BrokenProcessPool

    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(function, *arguments) for function, arguments in units]
        for unit, future in zip(units, futures):
            try:
                yield from reports(unit, future.result())
            except BrokenProcessPool:
                names = unit[1][0] if unit[0] is convert_group_files else (unit[1][0],)
                for path in names:
                    yield FileReport(path, error=f"{path}: internal error: the worker process converting it died")


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
