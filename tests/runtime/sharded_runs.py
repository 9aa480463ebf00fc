"""Runs of sharded_workers/train.py under `accel launch` (2 CPU processes), cached for the whole pytest session:
each costs 5-15 s, and several tests compare against the same DDP reference run."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.launching import launch

WORKER = Path(__file__).parent / "sharded_workers" / "train.py"
COMMON = ("--gradient-accumulation-steps", "2")
_SCRATCH = tempfile.mkdtemp(prefix="accel-sharded-")


@functools.cache
def train(*launch_args: str, script_args: tuple[str, ...] = (), cpu: bool = True) -> dict:
    """The worker's JSON report; fails with the workers' stderr unless every process exited cleanly."""
    out = Path(tempfile.mkstemp(suffix=".json", dir=_SCRATCH)[1])
    proc = launch(WORKER, out, *script_args, launch_args=COMMON + launch_args, cpu=cpu, timeout=300)
    assert proc.returncode == 0, f"exit code {proc.returncode}\n{proc.stderr[-4000:]}"
    assert "terminate called" not in proc.stderr, proc.stderr[-4000:]
    return json.loads(out.read_text())


@functools.cache
def train_one_process(*env_items: tuple[str, str]) -> dict:
    """The worker run with plain ``python`` (no launcher), with extra environment variables."""
    out = Path(tempfile.mkstemp(suffix=".json", dir=_SCRATCH)[1])
    env = {**os.environ, "OMP_NUM_THREADS": "1", **dict(env_items)}
    proc = subprocess.run([sys.executable, str(WORKER), str(out)], capture_output=True, text=True, env=env,
                          timeout=300, check=False)
    assert proc.returncode == 0, f"exit code {proc.returncode}\n{proc.stderr[-4000:]}"
    return json.loads(out.read_text())


def checkpoint_dir(name: str) -> str:
    return str(Path(_SCRATCH) / name)


def assert_same_training(got: dict, expected: dict, atol: float) -> None:
    """Same per-step losses, gradient norms, final learning rate and final weights (by parameter name)."""
    assert len(got["losses"]) == len(expected["losses"]) > 0
    for step, (a, b) in enumerate(zip(got["losses"], expected["losses"])):
        assert abs(a - b) <= atol, f"loss at step {step}: {a} vs {b}"
    for step, (a, b) in enumerate(zip(got["norms"], expected["norms"])):
        assert abs(a - b) <= atol * max(1.0, abs(b)), f"gradient norm at optimizer step {step}: {a} vs {b}"
    assert abs(got["lr"] - expected["lr"]) <= 1e-12
    assert got["weights"].keys() == expected["weights"].keys()
    for name in expected["weights"]:
        worst = max(abs(a - b) for a, b in zip(got["weights"][name], expected["weights"][name]))
        assert worst <= atol, f"{name}: weights differ by {worst}"
