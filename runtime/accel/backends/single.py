"""One process, one device (CPU, CUDA or MPS): the model is moved, never wrapped."""

from __future__ import annotations

import contextlib

from torch import nn

from ..state import DistributedType
from .base import Backend


def unwrap_compiled(model: nn.Module) -> nn.Module:
    """The module inside a ``torch.compile`` wrapper (or ``model`` itself)."""
    return getattr(model, "_orig_mod", model)


class SingleDeviceBackend(Backend):
    distributed_type = DistributedType.NO

    def prepare_model(self, model: nn.Module, device_placement: bool = True) -> nn.Module:
        if device_placement:
            model = model.to(self.state.device)
        return self.precision.wrap_forward(model)

    def no_sync(self, model: nn.Module) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def unwrap_model(self, model: nn.Module) -> nn.Module:
        return unwrap_compiled(model)
