"""save_state -> fresh process -> load_state continues training exactly: the losses, loss scale, learning rate and
weights of the steps after the checkpoint equal those of the uninterrupted run, bit for bit.

The worker (checkpoint_workers/resume.py) checkpoints mid-epoch in a shuffled DataLoader whose samples draw
random noise, with dropout, fp16 loss scaling (one process and DDP), an LR scheduler and a registered object.
"""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.launching import launch

WORKER = Path(__file__).parent / "checkpoint_workers" / "resume.py"
CONTINUE_FOR = 5


def _run_both(out: Path, num_processes: int, *extra: str) -> None:
    for mode in ("full", "resume"):
        if num_processes == 1:
            proc = subprocess.run([sys.executable, str(WORKER), mode, str(out), *extra],
                                  check=False, capture_output=True, text=True, timeout=120)
        else:
            proc = launch(WORKER, mode, out, *extra, num_processes=num_processes, timeout=180)
        assert proc.returncode == 0, f"{mode} run failed:\n{proc.stderr[-4000:]}"


def _assert_continues_exactly(out: Path, num_processes: int) -> None:
    for rank in range(num_processes):
        full = torch.load(out / f"full_rank{rank}.pt")
        resumed = torch.load(out / f"resume_rank{rank}.pt")
        assert len(full["losses"]) == len(resumed["losses"]) == CONTINUE_FOR
        assert torch.equal(torch.stack(full["losses"]), torch.stack(resumed["losses"])), (rank, full, resumed)
        assert full["scales"] == resumed["scales"]
        assert full["lr"] == resumed["lr"]
        assert full["steps"] == resumed["steps"]  # the registered counter was restored
        assert full["epoch"] == resumed["epoch"]
        assert full["params"].keys() == resumed["params"].keys()
        for name, tensor in full["params"].items():
            assert torch.equal(tensor, resumed["params"][name]), name


@pytest.mark.timeout(300)
def test_one_process_resume_is_bit_for_bit(tmp_path):
    _run_both(tmp_path, 1)
    _assert_continues_exactly(tmp_path, 1)
    listing = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert listing == ["accel_checkpoint.json", "custom_checkpoint_0.pkl", "model.safetensors", "optimizer.bin",
                       "random_states_0.pkl", "scaler.pt", "scheduler.bin"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary directory left


@pytest.mark.timeout(400)
def test_two_process_ddp_resume_is_bit_for_bit(tmp_path):
    _run_both(tmp_path, 2)
    _assert_continues_exactly(tmp_path, 2)
    assert {"random_states_0.pkl", "random_states_1.pkl"} <= {p.name for p in (tmp_path / "ckpt").iterdir()}


@pytest.mark.timeout(400)
def test_two_process_fsdp_sharded_resume_is_bit_for_bit(tmp_path):
    _run_both(tmp_path, 2, "sharded")
    _assert_continues_exactly(tmp_path, 2)  # weights: only the main process holds the gathered ones
    shards = sorted(p.name for p in (tmp_path / "ckpt" / "fsdp_model_0").iterdir())
    assert shards == [".metadata", "__0_0.distcp", "__1_0.distcp"]  # each process wrote its own shard


@pytest.mark.timeout(400)
def test_one_process_deepspeed_zero2_resume_is_bit_for_bit(tmp_path):
    pytest.importorskip("deepspeed", reason="the DeepSpeed backend needs the deepspeed package")
    _run_both(tmp_path, 1, "zero2")
    _assert_continues_exactly(tmp_path, 1)
    assert (tmp_path / "ckpt" / "deepspeed_model_0" / "latest").read_text() == "accel"  # the engine's own files
