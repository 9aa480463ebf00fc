"""The output check over every fixture pair (before.py -> after.py): all are believed correct, so a violation is either
a false positive of the check or a converter bug, listed in KNOWN with the reason (xfail, for the lead to fix)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from accel_convert.check import check

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
CASES = sorted(
    path.name for path in FIXTURES.iterdir() if (path / "before.py").is_file() and (path / "after.py").is_file()
)

# case -> why its after.py breaks an invariant (a converter bug, not a false positive of the check)
KNOWN: dict[str, str] = {}


def _read(path: Path) -> str:
    return path.read_bytes().decode("utf-8")


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(case, marks=pytest.mark.xfail(reason=KNOWN[case], strict=True)) if case in KNOWN else case
        for case in CASES
    ],
)
def test_fixture_output_holds_every_invariant(case):
    folder = FIXTURES / case
    violations = check(_read(folder / "before.py"), _read(folder / "after.py"))
    assert [violation.format(f"{case}/after.py") for violation in violations] == []


def test_the_check_is_fast_on_the_fixtures():
    """A few milliseconds a script, far below the converter's own cost (>= 30 scripts/s/core for both together)."""
    pairs = [(_read(FIXTURES / case / "before.py"), _read(FIXTURES / case / "after.py")) for case in CASES]
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for before, after in pairs:
            check(before, after)
        best = min(best, (time.perf_counter() - start) / len(pairs))
    assert best < 0.015, f"{best * 1000:.1f} ms per fixture"
