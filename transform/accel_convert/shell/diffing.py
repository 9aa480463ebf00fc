"""Unified diffs that `git apply` and `patch -p1` accept, optionally coloured for a terminal."""

from __future__ import annotations

import os

NO_NEWLINE = "\\ No newline at end of file\n"


def split_lines(text: str) -> list[str]:
    """Split ``text`` into lines at ``\\n`` only, keeping the endings (``str.splitlines`` also splits at
    form feeds and other characters that git does not treat as line breaks)."""
    lines = [line + "\n" for line in text.split("\n")]
    lines[-1] = lines[-1][:-1]
    if not lines[-1]:
        lines.pop()
    return lines


def diff_path(path: str) -> str:
    """The path as a diff header shows it: relative to the working directory when the file lies below it, else
    its absolute path without the leading slash, as ``git diff --no-index`` writes it (a ``../`` path is refused
    by ``git apply`` and ``patch`` alike; this one applies from the root: ``patch -p1 -d /``)."""
    absolute = os.path.abspath(path)
    relative = os.path.relpath(absolute)
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
        relative = os.path.splitdrive(absolute)[1].lstrip(os.sep)
    return relative.replace(os.sep, "/")


def unified_diff(before: str, after: str, path: str, context: int = 3) -> str:
    """A git-style diff from ``before`` to ``after`` with ``a/`` and ``b/`` headers ('' when they are equal).

    A last line without a final newline is followed by ``\\ No newline at end of file``, which difflib leaves out.
    """
    if before == after:
        return ""
    import difflib  # only paid for by --diff

    name = diff_path(path)
    out = []
    for line in difflib.unified_diff(
        split_lines(before), split_lines(after), f"a/{name}", f"b/{name}", n=context, lineterm="\n"
    ):
        out.append(line)
        if not line.endswith("\n"):
            out.append("\n" + NO_NEWLINE)
    return "".join(out)


def colorize(diff: str) -> str:
    """Add ANSI colours to the diff of one file: bold headers, cyan hunk markers, red removals, green additions."""
    import click

    styled = []
    in_hunk = False
    for line in split_lines(diff):
        body, end = (line[:-1], "\n") if line.endswith("\n") else (line, "")
        if body.startswith("@@"):
            in_hunk = True
            body = click.style(body, fg="cyan")
        elif not in_hunk:
            body = click.style(body, bold=True)
        elif body.startswith("-"):
            body = click.style(body, fg="red")
        elif body.startswith("+"):
            body = click.style(body, fg="green")
        styled.append(body + end)
    return "".join(styled)
