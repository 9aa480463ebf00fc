"""Snapshot tests of project fixtures: every fixtures/<case>/before/ tree converts (as `accel-convert DIR` does) to
exactly the after/ tree, with the diagnostics of diagnostics.txt (paths relative to the tree).

Regenerate after a deliberate change with ``python tests/transform/test_project_fixtures.py [CASE ...]``, then review
every diff line by line before committing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from accel_convert.model import Options
from accel_convert.project.conversion import convert_project

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
CASES = sorted(path.name for path in FIXTURES.iterdir() if (path / "before").is_dir())


def _tree(folder: Path) -> dict[str, str]:
    return {str(path): path.read_bytes().decode("utf-8") for path in sorted(folder.rglob("*.py"))}


def _converted(folder: Path, options: Options = Options()):
    texts = _tree(folder)
    return texts, convert_project(texts, str(folder), options)


def _diagnostics(folder: Path, results) -> str:
    lines = []
    for path, result in sorted(results.items()):
        lines += [diagnostic.format(str(Path(path).relative_to(folder))) + "\n" for diagnostic in result.diagnostics]
    return "".join(lines)


def test_there_is_a_project_case():
    assert CASES, "no fixtures/<case>/before/ tree found"


@pytest.mark.parametrize("case", CASES)
def test_tree_converts_to_after(case):
    folder = FIXTURES / case
    _, results = _converted(folder / "before")
    expected = _tree(folder / "after")
    assert sorted(Path(path).relative_to(folder / "before") for path in results) == sorted(
        Path(path).relative_to(folder / "after") for path in expected
    )
    for path, result in results.items():
        after = folder / "after" / Path(path).relative_to(folder / "before")
        assert result.text == after.read_bytes().decode("utf-8"), f"{case}: {after.name} differs"
    diagnostics = folder / "diagnostics.txt"
    assert _diagnostics(folder / "before", results) == (diagnostics.read_text() if diagnostics.is_file() else "")


@pytest.mark.parametrize("case", CASES)
def test_converting_after_changes_nothing(case):
    texts, results = _converted(FIXTURES / case / "after")
    assert {path: result.text for path, result in results.items()} == texts
    assert all(not result.changes for result in results.values())


@pytest.mark.parametrize("case", CASES)
def test_target_accelerate_differs_only_in_the_import(case):
    folder = FIXTURES / case
    _, results = _converted(folder / "before", Options(target="accelerate"))
    for path, result in results.items():
        after = (folder / "after" / Path(path).relative_to(folder / "before")).read_text()
        assert result.text == after.replace("from accel import Accelerator", "from accelerate import Accelerator", 1)


@pytest.mark.parametrize("case", CASES)
def test_changes_name_lines_of_their_own_file(case):
    folder = FIXTURES / case / "before"
    texts, results = _converted(folder)
    for path, result in results.items():
        lines = texts[path].count("\n") + 1
        assert all(1 <= change.line <= lines for change in result.changes), path
        assert all(1 <= diagnostic.line <= lines for diagnostic in result.diagnostics), path


def regenerate(names: list[str]) -> int:
    """Rewrite the after/ tree (and diagnostics.txt) of the named cases, or of every case when none is named."""
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        print(f"no such project fixture: {', '.join(unknown)}", file=sys.stderr)
        return 2
    for case in names or CASES:
        folder = FIXTURES / case
        _, results = _converted(folder / "before")
        for path, result in results.items():
            after = folder / "after" / Path(path).relative_to(folder / "before")
            after.parent.mkdir(parents=True, exist_ok=True)
            after.write_bytes(result.text.encode("utf-8"))
        text = _diagnostics(folder / "before", results)
        diagnostics = folder / "diagnostics.txt"
        if text:
            diagnostics.write_text(text)
        elif diagnostics.exists():
            diagnostics.unlink()
        changes = sum(len(result.changes) for result in results.values())
        print(f"{case}: {changes} changes in {sum(result.changed for result in results.values())} files")
    return 0


if __name__ == "__main__":
    sys.exit(regenerate(sys.argv[1:]))
