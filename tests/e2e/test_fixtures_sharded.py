"""Converted fixtures run unchanged under `accel launch --use-fsdp` and `--use-deepspeed` (2 CPU processes) and
print the same metrics as under DDP: the sharding backends need nothing from the script."""

from __future__ import annotations

import functools
import re

import pytest

from tests.e2e.cases import FIXTURES, load_case
from tests.e2e.runs import Run, execute, failure_report, line_shape, metric_lines
from tests.launching import launch

pytestmark = pytest.mark.timeout(900)

# (fixture, backend): a CNN with a buffer and dropout under FSDP, a per-step OneCycleLR under DeepSpeed, and the
# nanoGPT-style LLM loop (hand-written DDP converted, a seed offset by rank, micro-steps) under both (one sharded
# run each keeps the suite lean; every backend/fixture pair goes through the same unchanged script path)
CASES = [("module_subclass_model", "fsdp"), ("onecycle_per_step", "deepspeed"), ("llm_loop_own_ddp", "fsdp"),
         ("llm_loop_own_ddp", "deepspeed")]
BACKENDS = {
    "fsdp": ("--use-fsdp",),
    "deepspeed": ("--use-deepspeed", "--zero-stage", "2"),
}
_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


@functools.cache
def _ddp_metrics(name: str) -> list[str]:
    case = load_case(FIXTURES / name)
    completed = execute(Run(case.after, case.args, processes=2), FIXTURES.parent)
    assert completed.returncode == 0, failure_report(Run(case.after, case.args, processes=2), completed)
    return metric_lines(completed.stdout)


@pytest.mark.parametrize(("name", "backend"), CASES)
def test_fixture_runs_sharded_with_ddp_metrics(name, backend):
    if backend == "deepspeed":
        pytest.importorskip("deepspeed", reason="deepspeed is not installed (pip install -e '.[deepspeed]')")
    case = load_case(FIXTURES / name)
    if not case.after.is_file():
        pytest.skip(f"{name}: no after.py yet")
    completed = launch(case.after, *case.args, launch_args=BACKENDS[backend], timeout=300,
                       env={"OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}, cwd=FIXTURES.parent)
    assert completed.returncode == 0, f"exit code {completed.returncode}\n{completed.stderr[-4000:]}"
    # DeepSpeed prints a line of its own on stdout when it loads its CPU communication op
    got = [line for line in metric_lines(completed.stdout) if not line.startswith("DeepSpeed deepspeed.ops.")]
    expected = _ddp_metrics(name)
    assert [line_shape(x) for x in got] == [line_shape(x) for x in expected]
    for line, reference in zip(got, expected):
        values = [float(v) for v in _NUMBER.findall(line)]
        assert values == pytest.approx([float(v) for v in _NUMBER.findall(reference)], rel=1e-4, abs=1e-5), \
            f"{backend}: {line!r} vs DDP {reference!r}"
