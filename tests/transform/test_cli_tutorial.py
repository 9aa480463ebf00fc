"""docs/tutorials/first-conversion.md shows what the converter really does to examples/train.py today."""

import re
import shutil
from pathlib import Path

from tests.transform.cli_helpers import invoke

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "tutorials" / "first-conversion.md"


def _rstripped(text):
    return [line.rstrip() for line in text.splitlines()]


def test_tutorial_diff_and_counts_match_the_converter(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(ROOT / "examples" / "train.py", tmp_path / "train.py")
    result = invoke("--diff", "--verbose", "train.py")
    page = TUTORIAL.read_text()
    shown = re.search(r"^```diff\n(.*?)^```$", page, re.S | re.M).group(1)
    assert _rstripped(shown) == _rstripped(result.stdout), f"update the diff in {TUTORIAL} to today's output"
    summary = next(line for line in result.stderr.splitlines() if line.startswith("would convert train.py: "))
    count = summary.split(": ")[1]
    assert summary in page and f"train.py: {count}\n" in page, f"update the change counts in {TUTORIAL}"
    verbose_lines = [line for line in result.stderr.splitlines() if line.startswith("  train.py:")]
    shown_verbose = [line for line in page.splitlines() if line.startswith("  train.py:")]
    assert shown_verbose == verbose_lines[: len(shown_verbose)], f"update the --verbose listing in {TUTORIAL}"
