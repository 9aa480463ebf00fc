"""Fixtures declaring ``replicas_agree``: after training with 2 processes, every named model holds the same
parameters on every process (a model trained outside the prepared wrapper gets no averaged gradients and diverges),
and with one process the converted script ends with the original's parameters."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.cases import load_cases
from tests.launching import launch

PROBE = Path(__file__).with_name("replica_probe.py")
CASES = [case for case in load_cases() if case.replicas_agree]
TIMEOUT = 240
_ENV = {"OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def _probe(script: Path, names, processes: int, cwd: Path) -> dict[tuple[str, str], str]:
    """(name, rank) -> "sum norm" of each named model once ``script`` has run with ``processes`` processes."""
    args = (str(script), ",".join(names))
    if processes == 1:
        done = subprocess.run(
            [sys.executable, str(PROBE), *args], capture_output=True, text=True, timeout=TIMEOUT,
            env={**os.environ, **_ENV}, cwd=cwd,
        )
    else:
        done = launch(PROBE, *args, num_processes=processes, env=_ENV, timeout=TIMEOUT, cwd=cwd)
    assert done.returncode == 0, f"{script} ({processes} processes) failed:\n{done.stderr[-4000:]}"
    found = {}
    for path in cwd.glob("replica-*.txt"):
        rank = path.stem.split("-", 1)[1]
        for line in path.read_text().splitlines():
            name, fingerprint = line.split(" ", 1)
            found[(name, rank)] = fingerprint
    return found


def test_some_fixture_declares_replicas():
    assert CASES, "no fixture declares replicas_agree"


@pytest.mark.parametrize("case", CASES, ids=str)
def test_replicas_hold_the_same_parameters_on_every_process(case, tmp_path):
    two = _probe(case.after, case.replicas_agree, 2, tmp_path)
    for name in case.replicas_agree:
        assert (name, "0") in two and (name, "1") in two, f"{case.name}: no fingerprint of `{name}` from both processes"
        assert two[(name, "0")] == two[(name, "1")], f"{case.name}: `{name}` differs between the processes after training"


@pytest.mark.parametrize("case", CASES, ids=str)
def test_one_process_ends_with_the_originals_parameters(case, tmp_path):
    (tmp_path / "before").mkdir()
    (tmp_path / "after").mkdir()
    before = _probe(case.before, case.replicas_agree, 1, tmp_path / "before")
    after = _probe(case.after, case.replicas_agree, 1, tmp_path / "after")
    assert before, f"{case.name}: no fingerprint from the original"
    assert after == before
