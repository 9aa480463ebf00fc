"""Reading and writing Python source files without disturbing their bytes.

A file is decoded with the encoding Python itself would use (PEP 263 cookie, UTF-8 BOM), without newline
translation, so that CRLF line endings and the BOM survive a round trip. Writes are atomic and keep the file's
permission bits; a read-only file is refused, not replaced.
"""

from __future__ import annotations

import io
import os
import tokenize
from typing import NamedTuple


class SourceError(Exception):
    """A file could not be read, decoded, encoded or written; the message says why (``path``: the file, when one of
    several)."""

    def __init__(self, message: str, path: str | None = None):
        super().__init__(message)
        self.path = path

    def format(self, path: str) -> str:
        return f"{path}: error: {self}"


class Source(NamedTuple):
    """Decoded text of a file and the encoding to write it back with ("utf-8-sig" keeps a BOM)."""

    text: str
    encoding: str

    @property
    def has_bom(self) -> bool:
        return self.encoding == "utf-8-sig"

    def on_disk(self, text: str) -> str:
        """``text`` as the file's bytes spell it: with the BOM character in front when the file has one (a diff
        must show it, or its first context line does not match the file)."""
        return "\ufeff" + text if self.has_bom else text

    @property
    def byte_encoding(self) -> str:
        """The codec that turns ``on_disk`` text into the file's exact bytes."""
        return "utf-8" if self.has_bom else self.encoding


def decode_source(data: bytes) -> Source:
    """Decode ``data`` the way the Python interpreter would, keeping line endings as they are."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:  # unknown codec in the cookie, or a BOM that contradicts the cookie
        raise SourceError(f"cannot determine the encoding: {exc.msg}") from None
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SourceError(
            f"cannot decode line {line} as {encoding}: invalid byte {data[exc.start : exc.start + 1]!r}"
            f" (declare the file's encoding with a PEP 263 coding comment)"
        ) from None
    return Source(text, encoding)


def encode_source(text: str, encoding: str) -> bytes:
    """Encode ``text`` back into the file's encoding."""
    try:
        return text.encode(encoding)
    except UnicodeEncodeError as exc:
        raise SourceError(f"the converted text cannot be encoded as {encoding}: {exc.reason}") from None


def refuse_notebook(path: str) -> None:
    """Raise for a Jupyter notebook: its code lives in JSON cells, which the converter does not rewrite."""
    if path.lower().endswith(".ipynb"):
        import shlex

        raise SourceError(
            "Jupyter notebooks are not converted: export the notebook as a script"
            f" (`jupyter nbconvert --to script {shlex.quote(path)}`) and convert the .py file"
        )


def read_source(path: str) -> Source:
    """Read and decode the file at ``path``."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise SourceError(f"cannot read: {exc.strerror}") from None
    return decode_source(data)


def write_atomic(path: str, data: bytes) -> None:
    """Replace the file at ``path`` with ``data`` in one step, keeping its permission bits.

    The bytes go to a temporary file in the same directory, which is then renamed over the target, so a crash
    leaves either the old or the new file, never a half-written one. A symbolic link is followed: the file it
    points to is replaced, the link stays.

    A read-only file (no write permission bit, or none for this user) is refused: a rename would replace it although
    its owner marked it not to be changed (and would, for root, whatever its mode).
    """
    write_all_atomic([(path, data)])


def write_all_atomic(files: list[tuple[str, bytes]]) -> None:
    """Replace several files, all or none: each is staged next to its target first (a read-only file, a full disk
    or a missing folder stops the write before any file changes), then all are renamed into place. Should a rename
    still fail, the files already replaced get their old bytes back. ``SourceError.path`` names the file at fault."""
    staged: list[tuple[str, str, str]] = []  # (path as given, target, temporary file)
    try:
        for path, data in files:
            staged.append((path, *_stage(path, data)))
    except SourceError:
        for _, _, tmp in staged:
            os.unlink(tmp)
        raise
    replaced: list[tuple[str, bytes]] = []
    for index, (path, target, tmp) in enumerate(staged):
        try:
            with open(target, "rb") as f:
                old = f.read()
            os.replace(tmp, target)
        except OSError as exc:
            for _, _, later in staged[index:]:
                if os.path.exists(later):
                    os.unlink(later)
            for old_target, data in replaced:
                _put_back(old_target, data)
            raise SourceError(f"cannot write: {exc.strerror}", path) from None
        replaced.append((target, old))


def _stage(path: str, data: bytes) -> tuple[str, str]:
    """The target ``path`` resolves to and a temporary file beside it holding ``data`` with the target's mode."""
    import tempfile  # only paid for by runs that write

    target = os.path.realpath(path)
    directory, name = os.path.split(target)
    try:
        mode = os.stat(target).st_mode & 0o7777
        if not mode & 0o222 or not os.access(target, os.W_OK):
            import shlex

            raise SourceError(
                f"the file is read-only: not replaced (make it writable, e.g. `chmod u+w {shlex.quote(path)}`, "
                "to convert it)",
                path,
            )
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".accel-convert.tmp")
    except OSError as exc:
        raise SourceError(f"cannot write: {exc.strerror}", path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
    except OSError as exc:
        os.unlink(tmp)
        raise SourceError(f"cannot write: {exc.strerror}", path) from None
    return target, tmp


def _put_back(target: str, data: bytes) -> None:
    """Best effort: ``target`` holds ``data`` again (a later file of the same write failed)."""
    try:
        old_target, tmp = _stage(target, data)
        os.replace(tmp, old_target)
    except SourceError:
        pass
