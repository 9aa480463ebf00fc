"""Mixed precision: ``no`` (full fp32), ``fp16`` (autocast + loss scaling) and ``bf16`` (autocast)."""

from __future__ import annotations

import contextlib
import functools

import torch

PRECISIONS = ("no", "fp16", "bf16")
_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
_FP16_DEVICES = ("cuda", "cpu", "mps", "xpu")


def _to_fp32(data):
    """Cast the half-precision floating tensors of a (nested) forward output back to fp32."""
    if isinstance(data, torch.Tensor):
        return data.float() if data.dtype in (torch.float16, torch.bfloat16) else data
    if isinstance(data, dict):
        return type(data)({k: _to_fp32(v) for k, v in data.items()})
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(_to_fp32(v) for v in data))
    if isinstance(data, (list, tuple)):
        return type(data)(_to_fp32(v) for v in data)
    return data


class Precision:
    """Autocast and loss scaling for one precision on one device type.

    ``fp16`` owns a ``torch.amp.GradScaler``: losses are scaled before backward, gradients are unscaled once per
    optimizer step, and a step whose gradients contain inf/NaN is skipped (``step`` returns False).
    """

    def __init__(self, mode: str, device: torch.device):
        if mode not in PRECISIONS:
            raise ValueError(f"unknown mixed precision {mode!r}; allowed: {', '.join(PRECISIONS)}")
        if mode == "fp16" and device.type not in _FP16_DEVICES:
            raise ValueError(
                f"fp16 mixed precision is not supported on device {device.type!r}; "
                f"allowed devices: {', '.join(_FP16_DEVICES)} (or use mixed_precision='bf16' or 'no')"
            )
        self.mode = mode
        self.device_type = device.type
        self.dtype = _DTYPES.get(mode)
        self.scaler = torch.amp.GradScaler(device.type) if mode == "fp16" else None
        self._unscaled: set[int] = set()
        self._optimizer_stepped = False

    def autocast(self) -> contextlib.AbstractContextManager:
        """A fresh autocast context for this precision (a null context for ``no``)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def wrap_forward(self, model: torch.nn.Module) -> torch.nn.Module:
        """Make ``model.forward`` run under autocast and return fp32 outputs; ``no`` leaves the model untouched.

        Under an autocast the caller already entered, the forward is left to it (outputs keep the autocast dtype).

        The autocast context is built once here, not per call. ``unwrap_forward`` restores the original.
        """
        if self.dtype is None or hasattr(model, "_accel_original_forward"):
            return model
        original = model.forward
        device_type = self.device_type
        autocast = torch.autocast(device_type, dtype=self.dtype)

        @functools.wraps(original)
        def forward(*args, **kwargs):
            if torch.is_autocast_enabled(device_type):
                # Called under the script's own autocast (e.g. `with accelerator.autocast():` around forward and
                # loss): outputs stay in the autocast dtype, as in plain PyTorch, so the loss that follows is computed
                # by autocast's rules without a full fp32 copy of the logits (3 GB a step for GPT-2's).
                return original(*args, **kwargs)
            with autocast:
                output = original(*args, **kwargs)
            return _to_fp32(output)

        model._accel_original_forward = original
        model.forward = forward
        return model

    @staticmethod
    def unwrap_forward(model: torch.nn.Module) -> torch.nn.Module:
        original = model.__dict__.pop("_accel_original_forward", None)
        if original is not None:
            if getattr(original, "__self__", None) is model:
                del model.forward  # the bound method of the class shows through again
            else:
                model.forward = original
        return model

    def prepare_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """With loss scaling, note whether the scaler really called ``optimizer.step`` (it skips on inf/NaN)."""
        if self.scaler is not None:
            optimizer.register_step_pre_hook(self._note_step)

    def _note_step(self, optimizer, args, kwargs) -> None:
        self._optimizer_stepped = True

    def backward(self, loss: torch.Tensor, **kwargs) -> None:
        if self.scaler is not None:
            loss = self.scaler.scale(loss)
        loss.backward(**kwargs)

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        """Divide the gradients of ``optimizer`` by the loss scale, at most once per step."""
        if self.scaler is None or id(optimizer) in self._unscaled:
            return
        self.scaler.unscale_(optimizer)
        self._unscaled.add(id(optimizer))

    def step(self, optimizer: torch.optim.Optimizer, closure=None) -> bool:
        """Step ``optimizer``; returns False when loss scaling skipped the step because of inf/NaN gradients."""
        if self.scaler is None:
            if closure is None:
                optimizer.step()
            else:
                optimizer.step(closure)
            return True
        self._optimizer_stepped = False
        if closure is None:
            self.scaler.step(optimizer)
        else:
            self.scaler.step(optimizer, closure)
        self.scaler.update()
        self._unscaled.discard(id(optimizer))
        return self._optimizer_stepped
