"""Snapshot tests: every fixtures/<case>/before.py converts to exactly after.py (and diagnostics.txt).

Regenerate the expected files after a deliberate change with ``python tests/transform/test_fixtures.py [CASE ...]``, then
review every diff line by line before committing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import libcst as cst
import pytest

from accel_convert.convert import convert_source
from accel_convert.model import Options

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
CASES = sorted(path.name for path in FIXTURES.iterdir() if (path / "before.py").is_file())


def _read(path: Path) -> str:
    # bytes -> str without newline translation, so CRLF and a BOM reach the converter as they are on disk
    return path.read_bytes().decode("utf-8")


def _diagnostics(result) -> str:
    return "".join(d.format("before.py") + "\n" for d in result.diagnostics)


def _expected_for_accelerate(case: Path) -> str:
    own = case / "after_accelerate.py"
    if own.is_file():
        return _read(own)
    return _read(case / "after.py").replace("from accel import Accelerator", "from accelerate import Accelerator", 1)


@pytest.mark.parametrize("case", CASES)
def test_converts_to_after(case):
    folder = FIXTURES / case
    result = convert_source(_read(folder / "before.py"))
    assert result.text == _read(folder / "after.py")
    expected_diagnostics = folder / "diagnostics.txt"
    assert _diagnostics(result) == (_read(expected_diagnostics) if expected_diagnostics.is_file() else "")


@pytest.mark.parametrize("case", CASES)
def test_target_accelerate(case):
    folder = FIXTURES / case
    result = convert_source(_read(folder / "before.py"), Options(target="accelerate"))
    assert result.text == _expected_for_accelerate(folder)


@pytest.mark.parametrize("case", CASES)
def test_converting_after_changes_nothing(case):
    after = _read(FIXTURES / case / "after.py")
    result = convert_source(after)
    assert result.text == after
    assert result.changes == ()


@pytest.mark.parametrize("case", CASES)
def test_after_parses_and_changes_are_reported(case):
    folder = FIXTURES / case
    before, after = _read(folder / "before.py"), _read(folder / "after.py")
    cst.parse_module(after.lstrip("\ufeff"))
    result = convert_source(before)
    assert result.changed == (before != after)
    lines = before.count("\n") + 1
    assert all(1 <= change.line <= lines for change in result.changes)


def regenerate(names: list[str]) -> int:
    """Rewrite after.py (and diagnostics.txt) of the named cases, or of every case when none is named."""
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        print(f"no such fixture: {', '.join(unknown)}", file=sys.stderr)
        return 2
    for case in names or CASES:
        folder = FIXTURES / case
        result = convert_source(_read(folder / "before.py"))
        (folder / "after.py").write_bytes(result.text.encode("utf-8"))
        diagnostics = folder / "diagnostics.txt"
        if result.diagnostics:
            diagnostics.write_bytes(_diagnostics(result).encode("utf-8"))
        elif diagnostics.exists():
            diagnostics.unlink()
        print(f"{case}: {len(result.changes)} changes, {len(result.diagnostics)} diagnostics")
    return 0


if __name__ == "__main__":
    sys.exit(regenerate(sys.argv[1:]))
