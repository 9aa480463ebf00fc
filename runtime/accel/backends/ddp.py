"""Several processes, each holding a full replica: torch's DistributedDataParallel (NCCL on CUDA, gloo on CPU)."""

from __future__ import annotations

import contextlib

from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..state import DistributedType
from . import exit_hook
from .base import Backend
from .single import unwrap_compiled


class DDPBackend(Backend):
    """Gradients are averaged across processes during backward, except inside ``no_sync``. The plugin, if any, is
    a ``DistributedDataParallelKwargs`` whose options are passed to every ``DistributedDataParallel``."""

    def __init__(self, state, precision, plugin=None):
        super().__init__(state, precision, plugin)
        state.init_process_group()
        exit_hook.register()  # DDP's gloo all-reduces can otherwise abort the interpreter's exit (see exit_hook)
        self.distributed_type = DistributedType.MULTI_GPU if state.device.type == "cuda" else DistributedType.MULTI_CPU

    def prepare_model(self, model: nn.Module, device_placement: bool = True) -> nn.Module:
        if device_placement:
            model = model.to(self.state.device)
        model = self.precision.wrap_forward(model)
        if not any(p.requires_grad for p in model.parameters()):
            return model  # nothing to synchronise (e.g. a frozen teacher); DDP would refuse it
        device_ids = [self.state.device] if self.state.device.type == "cuda" else None
        options = self.plugin.to_kwargs() if self.plugin is not None else {}
        wrapped = DistributedDataParallel(model, device_ids=device_ids, **options)
        if self.plugin is not None and self.plugin.comm_hook != "no":
            _register_comm_hook(wrapped, self.plugin)
        return wrapped

    def no_sync(self, model: nn.Module) -> contextlib.AbstractContextManager:
        if isinstance(model, DistributedDataParallel):
            return model.no_sync()
        return contextlib.nullcontext()

    def unwrap_model(self, model: nn.Module) -> nn.Module:
        model = unwrap_compiled(model)
        if isinstance(model, DistributedDataParallel):
            model = unwrap_compiled(model.module)
        return model


def _register_comm_hook(model: DistributedDataParallel, options) -> None:
    """Install the gradient communication hook ``options`` (a DistributedDataParallelKwargs) asks for."""
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks, powerSGD_hook

    hooks = {
        "fp16": default_hooks.fp16_compress_hook,
        "bf16": default_hooks.bf16_compress_hook,
        "power_sgd": powerSGD_hook.powerSGD_hook,
        "batched_power_sgd": powerSGD_hook.batched_powerSGD_hook,
    }
    wrappers = {"fp16": default_hooks.fp16_compress_wrapper, "bf16": default_hooks.bf16_compress_wrapper}
    hook = hooks[options.comm_hook.value]
    state = None
    if options.comm_hook.value in ("power_sgd", "batched_power_sgd"):
        state = powerSGD_hook.PowerSGDState(process_group=None, **options.comm_state_option)
        if options.comm_wrapper != "no":
            hook = wrappers[options.comm_wrapper.value](hook)
    model.register_comm_hook(state=state, hook=hook)
