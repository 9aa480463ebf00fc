"""Mixed precision on CPU: fp16 loss scaling (skipped steps, unscale before clipping) and bf16 autocast."""

import pytest
import torch

from accel import Accelerator
from accel.precision import Precision


class Probe(torch.nn.Module):
    """Records the dtype of what flows through it."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(x.dtype)
        return x


def _prepared(mixed_precision):
    torch.manual_seed(0)
    accelerator = Accelerator(cpu=True, mixed_precision=mixed_precision)
    probe = Probe()
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), probe)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    return accelerator, probe, *accelerator.prepare(model, optimizer, scheduler)


def test_fp16_overflowing_step_is_skipped_and_the_scale_drops():
    accelerator, probe, model, optimizer, scheduler = _prepared("fp16")
    x = 0.1 * torch.randn(4, 3)  # small inputs: no genuine fp16 overflow at the initial scale
    scale = accelerator.scaler.get_scale()
    before = [p.detach().clone() for p in model.parameters()]
    out = model(x)
    assert probe.seen == [torch.float16] and out.dtype == torch.float32  # autocast inside, fp32 outside
    accelerator.backward(out.mean() * float("inf"))
    optimizer.step()
    scheduler.step()
    assert optimizer.step_was_skipped and accelerator.optimizer_step_was_skipped
    assert accelerator.scaler.get_scale() == scale / 2
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert scheduler.last_epoch == 0  # the scheduler does not step after a skipped optimizer step
    optimizer.zero_grad()

    accelerator.backward(model(x).mean())
    optimizer.step()
    scheduler.step()
    assert not accelerator.optimizer_step_was_skipped
    assert not all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert scheduler.last_epoch == 1


def test_fp16_gradients_are_unscaled_once_before_clipping():
    accelerator, _, model, optimizer, _ = _prepared("fp16")
    accelerator.backward(model(0.1 * torch.randn(4, 3)).mean())
    scale = accelerator.scaler.get_scale()
    scaled = [p.grad.clone() for p in model.parameters()]
    true_norm = torch.linalg.vector_norm(torch.cat([g.flatten() / scale for g in scaled]))
    norm = accelerator.clip_grad_norm_(model.parameters(), max_norm=1e6)
    torch.testing.assert_close(norm, true_norm)
    accelerator.clip_grad_value_(model.parameters(), clip_value=1e6)  # second call: no second unscale
    for p, g in zip(model.parameters(), scaled):
        torch.testing.assert_close(p.grad, g / scale)
    optimizer.step()
    assert not accelerator.optimizer_step_was_skipped


def test_bf16_autocast_on_cpu():
    accelerator, probe, model, optimizer, _ = _prepared("bf16")
    assert accelerator.scaler is None
    out = model(torch.randn(4, 3))
    assert probe.seen == [torch.bfloat16] and out.dtype == torch.float32
    accelerator.backward(out.mean())
    optimizer.step()
    assert not accelerator.optimizer_step_was_skipped
    with accelerator.autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    accelerator.unwrap_model(model, keep_fp32_wrapper=False)
    model(torch.randn(1, 3))
    assert probe.seen[-1] == torch.float32


def test_under_the_callers_autocast_outputs_keep_the_autocast_dtype():
    accelerator, probe, model, _, _ = _prepared("bf16")
    with accelerator.autocast():
        out = model(torch.randn(4, 3))
        loss = torch.nn.functional.mse_loss(out, torch.zeros(4, 2))  # autocast computes the loss in fp32
    assert probe.seen == [torch.bfloat16] and out.dtype == torch.bfloat16 and loss.dtype == torch.float32
    assert model(torch.randn(4, 3)).dtype == torch.float32  # outside it, outputs come back in fp32


def test_no_precision_leaves_the_forward_alone():
    accelerator, probe, model, _, _ = _prepared("no")
    assert "forward" not in model.__dict__
    model(torch.randn(1, 3))
    assert probe.seen == [torch.float32]
    with accelerator.autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_nested_outputs_are_cast_back_to_fp32():
    class Nested(torch.nn.Module):
        def forward(self, x):
            y = x @ x.T
            return {"a": y, "b": [y, (y, 3)], "i": torch.ones(1, dtype=torch.int64)}

    accelerator = Accelerator(cpu=True, mixed_precision="bf16")
    out = accelerator.prepare(Nested())(torch.ones(2, 2))
    assert out["a"].dtype == out["b"][0].dtype == out["b"][1][0].dtype == torch.float32
    assert out["b"][1][1] == 3 and out["i"].dtype == torch.int64


def test_fp16_on_an_unsupported_device_says_what_is_allowed():
    with pytest.raises(ValueError) as err:
        Precision("fp16", torch.device("meta"))
    assert "fp16 mixed precision is not supported on device 'meta'" in str(err.value)
    assert "cuda, cpu" in str(err.value) and "bf16" in str(err.value)


def test_unscale_gradients_divides_by_the_scale_once():
    accelerator, _, model, optimizer, _ = _prepared("fp16")
    accelerator.backward(model(0.1 * torch.randn(4, 3)).mean())
    scale = accelerator.scaler.get_scale()
    scaled = [p.grad.clone() for p in model.parameters()]
    accelerator.unscale_gradients()
    accelerator.unscale_gradients(optimizer)  # already unscaled this step: nothing happens
    for p, g in zip(model.parameters(), scaled):
        torch.testing.assert_close(p.grad, g / scale)
    Accelerator(cpu=True).unscale_gradients()  # without fp16: nothing to do
