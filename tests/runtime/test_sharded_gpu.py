"""On 2 GPUs (marker gpu): DDP, FSDP and ZeRO-1/2/3 train a 20-step bf16 run to the same losses, each reporting its
peak memory per GPU; FSDP and ZeRO-3 save -> load -> continue to the losses of an uninterrupted run."""

import pytest
import torch

from tests.runtime.sharded_runs import checkpoint_dir, train

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA devices"),
]

STEPS = ("--samples", "160", "--width", "1024")  # 20 batches of 4 per process
BF16 = ("--mixed-precision", "bf16")
BACKENDS = {
    "ddp": (),
    "fsdp": ("--use-fsdp", "--fsdp-transformer-layer-cls", "Block"),
    "zero1": ("--use-deepspeed", "--zero-stage", "1", "--gradient-clipping", "1.0"),
    "zero2": ("--use-deepspeed", "--zero-stage", "2", "--gradient-clipping", "1.0"),
    "zero3": ("--use-deepspeed", "--zero-stage", "3", "--gradient-clipping", "1.0"),
}


def _gpu_run(backend, *script_args):
    if backend.startswith("zero"):
        pytest.importorskip("deepspeed", reason="deepspeed is not installed (pip install -e '.[deepspeed]')")
    return train(*BACKENDS[backend], *BF16, script_args=(*STEPS, *script_args), cpu=False)


@pytest.mark.parametrize("backend", ["fsdp", "zero1", "zero2", "zero3"])
def test_bf16_losses_agree_with_ddp_and_peak_memory_is_reported(backend, record_property):
    run, ddp = _gpu_run(backend), _gpu_run("ddp")
    assert len(run["losses"]) == 20
    assert run["losses"] == pytest.approx(ddp["losses"], rel=3e-2)
    peaks = run["peak_memory_bytes"]
    assert len(peaks) == 2 and all(p > 0 for p in peaks)
    record_property("peak_memory_per_gpu_mib", [round(p / 2**20, 1) for p in peaks])
    record_property("ddp_peak_memory_per_gpu_mib", [round(p / 2**20, 1) for p in ddp["peak_memory_bytes"]])
    print(f"{backend}: peak MiB per GPU {[round(p / 2**20) for p in peaks]}, "
          f"DDP {[round(p / 2**20) for p in ddp['peak_memory_bytes']]}")


@pytest.mark.parametrize("backend", ["fsdp", "zero3"])
def test_save_load_continue_equals_uninterrupted(backend):
    directory = checkpoint_dir(f"gpu-{backend}")
    _gpu_run(backend, "--steps", "10", "--save", directory)
    resumed = _gpu_run(backend, "--resume", directory, "--skip", "10")
    whole = _gpu_run(backend)
    assert resumed["losses"] == pytest.approx(whole["losses"][10:], rel=1e-5, abs=1e-6)
