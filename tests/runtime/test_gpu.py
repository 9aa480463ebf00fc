"""The runtime checks again on CUDA (marker ``gpu``; skipped without a GPU).

On one GPU: in-process checks plus a one-process ``accel launch``; with two or more GPUs also the two-process
checks of test_distributed.py over NCCL, in fp32, fp16 and bf16.
"""

from pathlib import Path

import pytest
import test_distributed as cpu_checks
import torch
from test_accelerator import NoisyDataset
from torch.utils.data import DataLoader

from accel import Accelerator
from tests.launching import launch

pytestmark = pytest.mark.gpu
WORKER = Path(__file__).parent / "workers" / "distributed_checks.py"
two_gpus = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("ACCEL_USE_CPU", "ACCEL_MIXED_PRECISION", "ACCEL_GRADIENT_ACCUMULATION_STEPS", "RANK",
                 "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)


def _train_on_cuda(use_accelerator):
    device = torch.device("cuda")
    torch.manual_seed(1234)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Dropout(0.3), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    loader = DataLoader(NoisyDataset(), batch_size=5, shuffle=True)
    if use_accelerator:
        accelerator = Accelerator()
        assert accelerator.device.type == "cuda"
        model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    else:
        model = model.to(device)
    losses = []
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        loss = torch.nn.functional.mse_loss(model(x), y)
        accelerator.backward(loss) if use_accelerator else loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def test_one_process_on_cuda_is_bit_identical_to_the_plain_loop():
    assert _train_on_cuda(True) == _train_on_cuda(False)


def _cuda_model(mixed_precision):
    accelerator = Accelerator(mixed_precision=mixed_precision)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer = accelerator.prepare(model, optimizer)
    return accelerator, model, optimizer


def test_fp16_on_cuda_skips_an_overflowing_step_and_unscales_before_clipping():
    accelerator, model, optimizer = _cuda_model("fp16")
    x = 0.1 * torch.randn(4, 8, device="cuda")  # small inputs: no genuine fp16 overflow at the initial scale
    with torch.no_grad():
        assert model[0].weight.dtype == torch.float32 and model(x).dtype == torch.float32
    scale = accelerator.scaler.get_scale()
    before = model[0].weight.detach().clone()
    accelerator.backward(model(x).mean() * float("inf"))
    optimizer.step()
    assert accelerator.optimizer_step_was_skipped and accelerator.scaler.get_scale() == scale / 2
    assert torch.equal(before, model[0].weight)
    optimizer.zero_grad()
    accelerator.backward(model(x).mean())
    scale = accelerator.scaler.get_scale()
    scaled = model[0].weight.grad.clone()
    accelerator.clip_grad_norm_(model.parameters(), max_norm=1e6)
    torch.testing.assert_close(model[0].weight.grad, scaled / scale)
    optimizer.step()
    assert not accelerator.optimizer_step_was_skipped and not torch.equal(before, model[0].weight)


def test_bf16_on_cuda_runs_the_forward_in_bf16():
    accelerator, model, _ = _cuda_model("bf16")
    seen = []
    accelerator.unwrap_model(model)[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))  # inside autocast
    out = model(torch.randn(2, 8, device="cuda"))
    assert seen == [torch.bfloat16] and out.dtype == torch.float32


def test_one_process_launch_on_the_gpu(tmp_path):
    proc = launch(WORKER, tmp_path, "cuda", num_processes=1, cpu=False, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    r = torch.load(tmp_path / "rank0.pt")
    assert r["state"]["device"] == "cuda:0" and r["state"]["distributed_type"] == "NO"
    assert r["gather_for_metrics"] == list(range(10))
    assert r["accumulate_syncs"] == [False, True, False, True]
    expected = cpu_checks._one_process_training(
        [slice(0, 4), slice(4, 8), slice(8, 12), slice(12, 16)], lrs=[0.1, 0.05, 0.025, 0.0125]
    )
    for got, want in zip(r["ddp_params"], expected):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


@pytest.fixture(scope="module", params=["no", "fp16", "bf16"])
def nccl_ranks(request, tmp_path_factory):
    if torch.cuda.device_count() < 2:
        pytest.skip("needs 2 GPUs")
    out = tmp_path_factory.mktemp(f"nccl-{request.param}")
    proc = launch(WORKER, out, "cuda", request.param, num_processes=2, cpu=False, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return request.param, ([torch.load(out / f"rank{r}.pt") for r in (0, 1)], out, proc)


@two_gpus
def test_two_processes_over_nccl(nccl_ranks):
    mixed_precision, ranks = nccl_ranks
    results = ranks[0]
    for rank, r in enumerate(results):
        assert r["state"]["device"] == f"cuda:{rank}" and r["state"]["distributed_type"] == "MULTI_GPU"
    for a, b in zip(results[0]["ddp_params"], results[1]["ddp_params"]):
        assert torch.equal(a, b)  # replicas stay identical
    cpu_checks.test_gather_for_metrics_returns_the_dataset_once_in_order(ranks)
    cpu_checks.test_split_batches_gives_each_process_its_slice_of_each_batch(ranks)
    cpu_checks.test_shuffled_loader_agrees_across_processes_and_covers_each_sample_once(ranks)
    cpu_checks.test_collectives(ranks)
    cpu_checks.test_split_between_processes(ranks)
    cpu_checks.test_process_control(ranks)
    if mixed_precision == "no":  # exact equivalences hold in fp32 only
        cpu_checks.test_ddp_matches_one_process_on_concatenated_batches(ranks)
        cpu_checks.test_scheduler_steps_once_per_process_per_call(ranks)
        cpu_checks.test_accumulate_syncs_only_on_the_last_micro_batch_and_equals_one_big_step(ranks)
    else:
        assert results[0]["accumulate_syncs"] == results[1]["accumulate_syncs"] == [False, True]
        assert not torch.equal(results[0]["accumulate_grads"][0], results[1]["accumulate_grads"][0])
        assert torch.equal(results[0]["accumulate_grads"][1], results[1]["accumulate_grads"][1])
