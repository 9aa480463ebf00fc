"""One source made of a group's files, and the way back.

The entry comes first (so that the imports the converter adds land among its own), then each module, each after a
separator line. A hidden statement is replaced by a string of as many lines, so that every line keeps its number
within its file: a line of the joined source maps back to (file, line) by offsets alone. The marker in separators
and placeholders carries a token no source of the group contains.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass

from accel_convert.project.aliases import apply
from accel_convert.project.groups import Group
from accel_convert.project.markers import separator


@dataclass(frozen=True)
class Combined:
    text: str
    files: tuple[str, ...]
    starts: tuple[int, ...]  # 1-based line of the joined text where each file's first line is
    token: str
    hidden: tuple[tuple[str, ...], ...]  # per file: the original text of each placeholder, by number
    newline_added: tuple[bool, ...]  # the file did not end with a newline; one was added to join it
    spellings: tuple[dict[str, str], ...] = ()  # per file: a name of the joined source -> the file's own spelling

    def original_names(self, text: str, path: str | None = None) -> str:
        """``text`` (a message) with the joined source's names spelled as in ``path`` (or as defined)."""
        index = self.files.index(path) if path in self.files else None
        for number, spelling in enumerate(self.spellings):
            for joined, original in spelling.items():
                if joined in text and (index is None or number == index or joined not in self.spellings[index]):
                    text = text.replace(joined, original if index == number else original.rsplit(".", 1)[-1])
        return text

    def original_lines(self, text: str, path: str) -> str:
        """``text`` (a message about ``path``) with each ``line N`` of the joined source as a line of its file
        (``line N of engine.py`` when that is another file)."""

        def local(match: re.Match) -> str:
            file, line = self.locate(int(match.group(1)))
            return f"line {line}" if file == path else f"line {line} of {os.path.basename(file)}"

        return re.sub(r"\bline (\d+)\b", local, text)

    def locate(self, line: int) -> tuple[str, int]:
        """The file and its line that line ``line`` of the joined text comes from."""
        index = max(i for i, start in enumerate(self.starts) if start <= line) if line >= self.starts[0] else 0
        return self.files[index], max(1, line - self.starts[index] + 1)

    def split(self, code: str) -> dict[str, str]:
        """The converted joined text cut back into one text per file, hidden statements restored."""
        separator = re.compile(rf'^"""{self.token}:file:(\d+)"""\n', re.MULTILINE)
        parts, position, index = {}, 0, 0
        for match in separator.finditer(code):
            parts[index] = code[position : match.start()]
            index, position = int(match.group(1)), match.end()
        parts[index] = code[position:]
        parts = {self.files[number]: part for number, part in parts.items() if number < len(self.files)}  # not the callers from outside
        if list(parts) != list(self.files):
            raise ValueError("the converted project lost a file separator")
        placeholder = re.compile(rf'"""{self.token}:(\d+)\n*"""')
        out = {}
        for number, path in enumerate(self.files):
            originals = self.hidden[number]
            text = placeholder.sub(lambda match: originals[int(match.group(1))], parts[path])
            for joined, original in self.spellings[number].items():
                text = text.replace(joined, original)
            if self.newline_added[number] and text.endswith("\n"):
                text = text[:-1]
            out[path] = text
        return out


def combine(group: Group, texts: dict[str, str], outside: frozenset[str] = frozenset()) -> Combined:
    """Join the files of ``group`` (their texts in ``texts``) into one source; ``outside``: the files not converted
    with it whose uses of its definitions must keep working (the joined source calls those from a function that
    cannot reach the accelerator)."""
    token = _token(texts[path] for path in group.files)
    pieces, starts, hidden, added, spellings = [], [], [], [], []
    line = 1
    for number, path in enumerate(group.files):
        text = texts[path]
        added.append(not text.endswith("\n"))
        if added[-1]:
            text += "\n"
        if number:
            pieces.append(separator(token, number) + "\n")
            line += 1
        source_lines = text.splitlines(keepends=True)
        renames = group.renames.get(path, ())
        spellings.append({rename.joined: rename.original for rename in renames})
        lines = apply(source_lines, renames)
        originals = []
        for spot in reversed(group.hidden.get(path, ())):
            first, last = spot.first - 1, spot.last
            original = "".join(source_lines[first:last])
            originals.append(original.rstrip("\n"))
            placeholder = f'"""{token}:{{}}' + "\n" * (last - first - 1) + '"""\n'
            lines[first:last] = [placeholder]
        originals.reverse()
        # number the placeholders in file order
        count = 0
        for index, piece in enumerate(lines):
            if piece.startswith(f'"""{token}:{{}}'):
                lines[index] = piece.replace("{}", str(count), 1)
                count += 1
        hidden.append(tuple(originals))
        starts.append(line)
        pieces.append("".join(lines))
        line += text.count("\n")
    stub = _outside_callers(group, token, outside)
    if stub:
        pieces.append(separator(token, len(group.files)) + "\n" + stub)
    return Combined("".join(pieces), tuple(group.files), tuple(starts), token, tuple(hidden), tuple(added), tuple(spellings))


def _outside_callers(group: Group, token: str, outside: frozenset[str]) -> str:
    """A function the joined source ends with, which calls every definition that the ``outside`` files use: a
    caller that cannot reach the accelerator, so the conversion hands it to none of them and keeps their signatures
    (the split drops it)."""
    calls = []
    for path, users in group.outside.items():
        joined = {rename.original: rename.joined for rename in group.renames.get(path, ())}
        names = sorted({name for user, used in users.items() if user in outside for name in used})
        calls += [f"    {joined.get(name, name)}()\n" for name in names]
    if not calls:
        return ""
    return f"\n\ndef __accel_convert_outside_{token.rsplit('-', 1)[-1]}__():\n" + "".join(calls)


def _token(texts) -> str:
    joined = "".join(texts)
    while True:
        token = f"accel-convert-{secrets.token_hex(6)}"
        if token not in joined:
            return token
