"""Evaluation metrics do not depend on the number of processes.

For every runnable fixture that declares ``untrained_args`` (arguments under which it trains nothing and evaluates
its freshly initialised model, so every process holds the same weights), the converted after.py prints exactly the
metric lines of before.py, with one process and under ``accel launch --num-processes 2 --cpu``: the evaluation
gathers the model's outputs and the targets (AC010) and prints once (AC011).
"""

from __future__ import annotations

import pytest

from tests.e2e.cases import load_cases
from tests.e2e.runs import Run, failure_report, metric_lines

CASES = [case for case in load_cases() if case.runnable and case.untrained_args]


def needed_runs(test_name, params):
    """The subprocess runs this test asks for, so the session pool can start them early."""
    case = params.get("case")
    if test_name != "test_untrained_evaluation_is_the_same_with_two_processes" or not case.after.is_file():
        return []
    return [
        Run(case.before, case.untrained_args),
        Run(case.after, case.untrained_args),
        Run(case.after, case.untrained_args, processes=2),
    ]


def _lines(pool, run):
    completed = pool.result(run)
    assert completed.returncode == 0, failure_report(run, completed)
    return metric_lines(completed.stdout)


def test_some_fixtures_evaluate_untrained():
    assert len(CASES) >= 2, "fixtures with untrained_args in fixture.toml are what this test checks"


@pytest.mark.parametrize("case", CASES, ids=str)
def test_untrained_evaluation_is_the_same_with_two_processes(case, run_pool):
    if not case.after.is_file():
        pytest.skip(f"fixtures/{case.name}/after.py does not exist yet")
    original, one, two = needed_runs("test_untrained_evaluation_is_the_same_with_two_processes", {"case": case})
    expected = _lines(run_pool, original)
    assert expected, f"fixtures/{case.name}/before.py {' '.join(case.untrained_args)} printed no metrics"
    assert _lines(run_pool, one) == expected, "one process"
    assert _lines(run_pool, two) == expected, "two processes: every line once, with the one-process values"
