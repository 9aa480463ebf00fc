"""fixtures/amp_checkpoint_resume run twice into one checkpoint directory (2 epochs, then resumed to 4): the converted
script resumes exactly as the original, with 1 and 2 processes and under Hugging Face Accelerate, and under fp16
the GradScaler state it writes is the accelerator's and is restored from the file."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from tests.e2e.cases import FIXTURES
from tests.e2e.runs import metric_lines
from tests.launching import launch

CASE = FIXTURES / "amp_checkpoint_resume"
TIMEOUT = 120
STEPS_PER_EPOCH = 10  # 320 samples, batches of 32
RESUMED = ["resumed after epoch 1"]


def _run(script: Path, *args: str, processes: int = 1) -> str:
    # DS_ACCELERATOR: accelerate imports deepspeed, which otherwise prints a line about its device choice on stdout
    env = {"OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0", "DS_ACCELERATOR": "cpu"}
    if processes == 1:
        command = [sys.executable, str(script), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, env={**os.environ, **env})
    else:
        done = launch(script, *args, num_processes=processes, env=env, timeout=2 * TIMEOUT)
    assert done.returncode == 0, f"{script} {' '.join(args)} ({processes} processes) failed:\n{done.stderr[-4000:]}"
    return done.stdout


def _interrupted_and_resumed(script: Path, out: Path, *args: str, processes: int = 1) -> list[str]:
    out.mkdir()
    first = _run(script, *args, "--epochs", "2", "--out-dir", str(out), processes=processes)
    second = _run(script, *args, "--out-dir", str(out), processes=processes)
    return metric_lines(first) + metric_lines(second)


def _accelerate_script(folder: Path) -> Path:
    script = folder / "converted_for_accelerate.py"
    script.write_text(CASE.joinpath("before.py").read_text())
    command = [sys.executable, "-m", "accel_convert", "--target", "accelerate", "--no-color", "--exit-zero", str(script)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "from accelerate import Accelerator" in script.read_text()
    return script


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("amp_resume")


@pytest.fixture(scope="module")
def runs(folder):
    """The printed lines of each interrupted-and-resumed run (checkpoints in ``folder / <name>``), two at a time."""
    jobs = {
        "before": lambda: _interrupted_and_resumed(CASE / "before.py", folder / "before"),
        "after": lambda: _interrupted_and_resumed(CASE / "after.py", folder / "after"),
        "after fp16, 2 processes": lambda: _interrupted_and_resumed(CASE / "after.py", folder / "two", "--amp", processes=2),
    }
    if _has_accelerate():
        jobs["accelerate"] = lambda: _interrupted_and_resumed(_accelerate_script(folder), folder / "accelerate")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


def _has_accelerate() -> bool:
    try:
        import accelerate  # noqa: F401
    except ImportError:
        return False
    return True


def _epochs(lines: list[str]) -> list[str]:
    return [line.split(" loss ")[0] for line in lines]


def test_resumed_run_matches_before_with_one_process(runs):
    assert _epochs(runs["before"]) == ["epoch 0", "epoch 1", *RESUMED, "epoch 2", "epoch 3"]
    assert runs["after"] == runs["before"]


def test_resumes_with_two_processes_under_fp16(runs):
    assert _epochs(runs["after fp16, 2 processes"]) == ["epoch 0", "epoch 1", *RESUMED, "epoch 2", "epoch 3"]


def test_resumed_run_under_hugging_face_accelerate_matches_before(runs):
    if "accelerate" not in runs:
        pytest.skip("accelerate is not installed")
    assert runs["accelerate"] == runs["before"]


def test_fp16_checkpoint_holds_and_restores_the_accelerators_scaler(tmp_path):
    """Our runtime runs fp16 on the CPU with a real GradScaler: its state goes into the checkpoint and comes back."""
    script = CASE / "after.py"
    _run(script, "--amp", "--epochs", "1", "--out-dir", str(tmp_path))
    path = tmp_path / "last.pt"
    checkpoint = torch.load(path)
    scaler = checkpoint["scaler"]
    assert scaler["scale"] == 65536.0 and scaler["_growth_tracker"] == STEPS_PER_EPOCH, scaler
    # A scale and step count the fresh scaler cannot have: the resumed run must continue from them.
    checkpoint["scaler"] = {**scaler, "scale": 512.0, "_growth_tracker": 100}
    torch.save(checkpoint, path)
    assert metric_lines(_run(script, "--amp", "--epochs", "2", "--out-dir", str(tmp_path)))[0] == "resumed after epoch 0"
    resumed = torch.load(path)
    assert resumed["epoch"] == 1
    assert resumed["scaler"]["scale"] == 512.0
    assert resumed["scaler"]["_growth_tracker"] == 100 + STEPS_PER_EPOCH


def test_without_fp16_the_checkpoint_holds_an_empty_scaler_state_as_before(runs, folder):
    for name in ("before", "after"):
        checkpoint = torch.load(folder / name / "last.pt")
        assert checkpoint["epoch"] == 3 and checkpoint["scaler"] == {}, name


@pytest.mark.gpu
def test_fp16_resumed_run_matches_before_on_cuda(tmp_path):
    """On CUDA the original's GradScaler is active: the converted script must resume it to the same numbers."""
    before = _interrupted_and_resumed(CASE / "before.py", tmp_path / "before", "--amp")
    after = _interrupted_and_resumed(CASE / "after.py", tmp_path / "after", "--amp")
    assert _epochs(before) == ["epoch 0", "epoch 1", *RESUMED, "epoch 2", "epoch 3"]
    assert after == before
    for name in ("before", "after"):
        assert torch.load(tmp_path / name / "last.pt")["scaler"]["scale"] > 0, name
