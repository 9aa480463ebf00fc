"""The interface every backend fills in: how models, optimizers and gradients are distributed.

A backend is built from the process state and the precision (both injected) and is asked, in this order, to
prepare the models and optimizers, then during training to run backward, step optimizers, clip gradients,
suspend gradient synchronisation and communicate tensors, and at the end to unwrap models, produce state dicts
for saving and tear down. Collectives default to ``torch.distributed`` (the identity with one process); a
backend that communicates differently (XLA) overrides them.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..precision import Precision
from ..state import DistributedType, ProcessState
from . import exit_hook

_REDUCE_OPS = {"sum": "SUM", "max": "MAX", "min": "MIN"}


class Backend(abc.ABC):
    """One way of placing and synchronising a model: single device, DDP, FSDP, DeepSpeed, ..."""

    #: The ``DistributedType`` this backend reports through ``Accelerator.distributed_type``.
    distributed_type: DistributedType

    def __init__(self, state: ProcessState, precision: Precision, plugin: Any = None):
        self.state = state
        self.precision = precision
        self.plugin = plugin

    # -- setup -------------------------------------------------------------------------------------------------
    def observe_training(self, gradient_accumulation_steps: int, micro_batch_size: int | None) -> None:
        """Facts known at ``prepare`` that a backend may need (DeepSpeed's config): the accumulation steps and the
        per-process batch size of the DataLoader prepared alongside (None without one). Default: unused."""

    @abc.abstractmethod
    def prepare_model(self, model: nn.Module, device_placement: bool = True) -> nn.Module:
        """Move ``model`` to the device, apply the precision's autocast to its forward, wrap it for distribution."""

    def prepare_optimizer(self, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        """Adapt ``optimizer`` to the prepared model (a sharding backend may rebuild it); default: unchanged."""
        return optimizer

    def prepare_models_and_optimizers(
        self, models: list[nn.Module], optimizers: list[torch.optim.Optimizer], device_placement: bool = True
    ) -> tuple[list[nn.Module], list[torch.optim.Optimizer]]:
        """Prepare all models, then all optimizers. Backends that must see both at once (DeepSpeed) override this."""
        models = [self.prepare_model(m, device_placement) for m in models]
        return models, [self.prepare_optimizer(o) for o in optimizers]

    # -- training step -----------------------------------------------------------------------------------------
    def backward(self, loss: torch.Tensor, **kwargs) -> None:
        """Backward through the precision (loss scaling in fp16)."""
        self.precision.backward(loss, **kwargs)

    def optimizer_step(self, optimizer: torch.optim.Optimizer, closure: Callable | None = None) -> bool:
        """Step ``optimizer``; return False when the step was skipped (inf/NaN gradients under fp16)."""
        return self.precision.step(optimizer, closure)

    def unscale_gradients(self, optimizer: torch.optim.Optimizer) -> None:
        """Bring the gradients of ``optimizer`` back to their true scale before they are inspected or clipped."""
        self.precision.unscale_(optimizer)

    def clip_grad_norm_(self, parameters, max_norm: float, norm_type: float = 2.0) -> torch.Tensor:
        """Clip the gradient norm of ``parameters`` in place; returns the total norm before clipping (a tensor)."""
        return nn.utils.clip_grad_norm_(parameters, max_norm, norm_type=norm_type)

    def clip_grad_value_(self, parameters, clip_value: float) -> None:
        """Clamp every gradient of ``parameters`` to ``[-clip_value, clip_value]`` in place."""
        nn.utils.clip_grad_value_(parameters, clip_value)

    @abc.abstractmethod
    def no_sync(self, model: nn.Module) -> contextlib.AbstractContextManager:
        """A context in which backward accumulates gradients locally without synchronising them."""

    # -- collectives (tensors only; nesting is handled by ``accel.ops``) ---------------------------------------
    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Concatenate ``tensor`` from every process along dim 0 (same shape on every process)."""
        if self.state.num_processes == 1:
            return tensor
        if tensor.ndim == 0:
            tensor = tensor[None]
        out = torch.empty(
            (tensor.shape[0] * self.state.num_processes, *tensor.shape[1:]), dtype=tensor.dtype, device=tensor.device
        )
        gather_into = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor  # the newer name
        # Collectives are not differentiable: gather the values (an output that requires grad would fail in gloo).
        gather_into(out, tensor.detach().contiguous())
        return out

    def all_gather_object(self, obj: Any) -> list:
        """A list with ``obj`` from every process, in process order (pickled; slow, for non-tensors)."""
        if self.state.num_processes == 1:
            return [obj]
        out = [None] * self.state.num_processes
        dist.all_gather_object(out, obj)
        return out

    def all_reduce(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """Reduce a copy of ``tensor`` over all processes with ``op`` (sum, max or min) and return it."""
        out = tensor.detach().clone()
        if self.state.num_processes > 1:
            dist.all_reduce(out, getattr(dist.ReduceOp, _REDUCE_OPS[op]))
        return out

    def broadcast(self, tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
        """Overwrite ``tensor`` in place with process ``src``'s value and return it."""
        if self.state.num_processes > 1:
            dist.broadcast(tensor, src)
        return tensor

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        """Process ``src``'s ``obj`` on every process (pickled)."""
        if self.state.num_processes == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src)
        return box[0]

    def barrier(self) -> None:
        """Wait until every process reaches this point."""
        if self.state.num_processes > 1:
            dist.barrier()

    # -- after training ----------------------------------------------------------------------------------------
    @abc.abstractmethod
    def unwrap_model(self, model: nn.Module) -> nn.Module:
        """The user's own module inside whatever wrapping ``prepare_model`` added."""

    def model_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The full state dict of ``model`` for saving (complete on the main process; a sharding backend gathers)."""
        return self.unwrap_model(model).state_dict()

    def teardown(self) -> None:
        """Release what the backend holds and destroy the process group, once the collective threads are idle
        (see ``exit_hook``: a group freed while a gloo thread releases a collective deadlocks)."""
        exit_hook.quiesce_and_destroy(barrier=False)
