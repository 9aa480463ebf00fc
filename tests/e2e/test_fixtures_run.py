"""Every runnable fixture: the converted after.py prints exactly the metrics of before.py with one process,
and trains to the end under `accel launch --num-processes 2 --cpu`."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from tests.e2e.cases import Case, load_cases
from tests.e2e.runs import Run, failure_report, line_shape, metric_lines

CASES = load_cases()
RUNNABLE = [case for case in CASES if case.runnable]
# Converted with --target accelerate at test time and run against Hugging Face accelerate (installed for the tests).
ACCELERATE_CASES = [case for case in RUNNABLE if case.name in ("argparse_no_cuda", "dict_batches")]
CONVERT_TIMEOUT = 60
NOT_FINITE = re.compile(r"(?<![\w.])[-+]?(?:nan|inf)(?![\w])", re.IGNORECASE)


def needed_runs(test_name, params):
    """The subprocess runs a test will ask for, so the session pool can start them early."""
    case = params.get("case")
    if not isinstance(case, Case) or not case.after.is_file():  # an empty parametrisation passes a NOTSET marker
        return []
    if test_name == "test_one_process_matches_before":
        return [_before(case), Run(case.after, case.args)]
    if test_name == "test_two_processes_print_metrics":
        return [_before(case), Run(case.after, case.args, processes=2)]
    if test_name == "test_two_processes_match_the_originals_own_ddp":
        return [Run(case.before, case.args, processes=2, launcher="torchrun"), Run(case.after, case.args, processes=2)]
    return []


def _before(case):
    return Run(case.before, case.args, launcher=case.before_launcher)


def _require_after(case):
    if not case.after.is_file():
        pytest.skip(f"fixtures/{case.name}/after.py does not exist yet (the converter has not produced it)")


def _succeeded(pool, run):
    completed = pool.result(run)
    assert completed.returncode == 0, failure_report(run, completed)
    return completed


@pytest.mark.parametrize("case", RUNNABLE, ids=str)
def test_one_process_matches_before(case, run_pool):
    _require_after(case)
    before = _succeeded(run_pool, _before(case))
    after = _succeeded(run_pool, Run(case.after, case.args))
    expected = metric_lines(before.stdout)
    assert expected, f"fixtures/{case.name}/before.py printed no metrics"
    assert metric_lines(after.stdout) == expected


@pytest.mark.parametrize("case", [case for case in RUNNABLE if not case.unchanged], ids=str)
def test_two_processes_print_metrics(case, run_pool):
    _require_after(case)
    assert case.after.read_bytes() != case.before.read_bytes(), (
        f"fixtures/{case.name}/after.py equals before.py: the case trains, so the converter should have changed it "
        "(mark it unchanged = true in fixture.toml if leaving it alone is right)"
    )
    before = _succeeded(run_pool, _before(case))
    launched = _succeeded(run_pool, Run(case.after, case.args, processes=2))
    printed = metric_lines(launched.stdout)
    missing = sorted({line_shape(line) for line in metric_lines(before.stdout)} - {line_shape(line) for line in printed})
    assert not missing, "the 2-process run never printed these metric lines:\n" + "\n".join(missing)
    not_finite = [line for line in printed if NOT_FINITE.search(line)]
    assert not not_finite, "the 2-process run printed non-finite metrics:\n" + "\n".join(not_finite)


@pytest.mark.parametrize("case", [case for case in RUNNABLE if case.matches_torchrun], ids=str)
def test_two_processes_match_the_originals_own_ddp(case, run_pool):
    """A script with its own distributed setup, started by torchrun with 2 processes, and its conversion under
    accel launch print the same lines: the conversion keeps what the original's distributed run computes."""
    _require_after(case)
    original = _succeeded(run_pool, Run(case.before, case.args, processes=2, launcher="torchrun"))
    launched = _succeeded(run_pool, Run(case.after, case.args, processes=2))
    expected = metric_lines(original.stdout)
    assert expected, f"fixtures/{case.name}/before.py printed no metrics under torchrun"
    assert metric_lines(launched.stdout) == expected


@pytest.mark.parametrize("case", ACCELERATE_CASES, ids=str)
def test_target_accelerate_matches_before(case, run_pool, tmp_path):
    pytest.importorskip("accelerate")
    script = tmp_path / "before.py"
    shutil.copyfile(case.before, script)
    command = [sys.executable, "-m", "accel_convert", "--target", "accelerate", "--no-color", "--exit-zero", str(script)]
    converted = subprocess.run(command, capture_output=True, text=True, timeout=CONVERT_TIMEOUT)
    assert converted.returncode == 0, f"{' '.join(command)} exited with {converted.returncode}\n{converted.stderr}"
    text = script.read_text()
    assert "from accelerate import Accelerator" in text and "from accel import" not in text, text
    before = _succeeded(run_pool, _before(case))
    after = _succeeded(run_pool, Run(script, case.args))
    assert metric_lines(after.stdout) == metric_lines(before.stdout)
