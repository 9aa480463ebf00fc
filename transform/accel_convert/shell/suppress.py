"""Silencing diagnostics: ``# accel-convert: ignore[AC010]`` on the diagnostic's line, or ``per-file-ignores``.

A comment names one or more codes (``ignore[AC010,AC012]``; a prefix such as ``AC01`` names every code it starts).
A silenced diagnostic no longer makes the command exit 1; ``-v`` still shows it, with what silenced it. The rules
still run: silencing a diagnostic changes no edit of the conversion.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Sequence

from accel_convert.model import Diagnostic

MARKER = "accel-convert:"
COMMENT = re.compile(r"#\s*accel-convert:\s*ignore\[([^\]]*)\]")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # the line breaks libcst counts (str.splitlines knows more)


def comment_codes(line: str) -> frozenset[str]:
    """The codes (or prefixes) named by the suppression comments on ``line``."""
    codes: set[str] = set()
    for match in COMMENT.finditer(line):
        codes.update(code.strip().upper() for code in match.group(1).split(",") if code.strip())
    return frozenset(codes)


def matches(code: str, codes: Iterable[str]) -> bool:
    return any(code.startswith(prefix) for prefix in codes)


def split(
    diagnostics: Sequence[Diagnostic], text: str, file_ignores: Sequence[tuple[str, frozenset[str]]] = ()
) -> tuple[tuple[Diagnostic, ...], tuple[tuple[Diagnostic, str], ...]]:
    """``diagnostics`` of ``text`` split into those that stand and those silenced, each with what silenced it:
    ``file_ignores`` holds (per-file-ignores pattern, codes) pairs that match this file."""
    if not diagnostics or (MARKER not in text and not file_ignores):
        return tuple(diagnostics), ()
    lines = _LINE_BREAK.split(text) if MARKER in text else []
    kept, silenced = [], []
    for diagnostic in diagnostics:
        line = lines[diagnostic.line - 1] if 0 < diagnostic.line <= len(lines) else ""
        if MARKER in line and matches(diagnostic.code, comment_codes(line)):
            silenced.append((diagnostic, "a `# accel-convert: ignore` comment on its line"))
            continue
        pattern = next((pattern for pattern, codes in file_ignores if matches(diagnostic.code, codes)), None)
        if pattern is not None:
            silenced.append((diagnostic, f"per-file-ignores {pattern!r}"))
            continue
        kept.append(diagnostic)
    return tuple(kept), tuple(silenced)


class FileIgnores:
    """``per-file-ignores``: .gitignore-style patterns (relative to the project root, as exclude patterns are)
    mapped to the codes whose diagnostics they silence in the files they match."""

    def __init__(self, table: Sequence[tuple[str, frozenset[str]]], root: str):
        self.table = tuple(table)
        self.root = os.path.abspath(root)

    @functools.cached_property
    def _specs(self):
        import pathspec  # only paid for when the configuration has per-file-ignores

        return [(pattern, pathspec.GitIgnoreSpec.from_lines([pattern]), codes) for pattern, codes in self.table]

    def __bool__(self) -> bool:
        return bool(self.table)

    def for_path(self, path: str) -> tuple[tuple[str, frozenset[str]], ...]:
        """The (pattern, codes) pairs whose pattern matches ``path``."""
        if not self.table:
            return ()
        absolute = os.path.abspath(path)
        relative = os.path.relpath(absolute, self.root)
        if relative.startswith(os.pardir):
            relative = absolute
        relative = relative.replace(os.sep, "/")
        return tuple((pattern, codes) for pattern, spec, codes in self._specs if spec.match_file(relative))
