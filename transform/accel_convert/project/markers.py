"""The separator line between two files of a joined project source, written by ``combined`` and recognised by the
analysis, which gives every scope the number of the file it is defined in."""

from __future__ import annotations

import re

SEPARATOR = re.compile(r'^"""accel-convert-[0-9a-f]+:file:(\d+)"""$')


def separator(token: str, number: int) -> str:
    """The separator statement before file ``number`` (``token``: ``accel-convert-`` and hex digits)."""
    return f'"""{token}:file:{number}"""'


def file_number(statement_code: str) -> int | None:
    """The file a separator statement starts, or None for any other statement."""
    match = SEPARATOR.match(statement_code)
    return int(match.group(1)) if match else None
