"""FSDP2: every process holds a shard of each parameter (``torch.distributed.fsdp.fully_shard``, DTensor).

The submodules the plugin's auto-wrap policy selects are sharded first, each as a unit that is gathered only
while it runs, then the whole model. Sharding replaces the parameters by DTensor parameters, so optimizers
created before ``prepare`` are re-bound to the new ones (by parameter name).
"""

from __future__ import annotations

import contextlib
import os

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import (
    CPUOffloadPolicy,
    FSDPModule,
    MixedPrecisionPolicy,
    fully_shard,
)

from ..plugins import FullyShardedDataParallelPlugin
from ..state import DistributedType
from . import exit_hook
from .base import Backend
from .single import unwrap_compiled

_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)
_FULL_LOAD = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)


def _checkpoint_wrapper():
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
        checkpoint_wrapper,
    )

    return checkpoint_wrapper


def units_to_shard(model: nn.Module, plugin: FullyShardedDataParallelPlugin) -> list[nn.Module]:
    """The submodules sharded as units of their own, innermost first (the root is not included)."""
    if plugin.auto_wrap_policy == "transformer":
        wanted = set(plugin.transformer_layer_cls)
        units = [m for m in model.modules() if m is not model and type(m).__name__ in wanted]
        found = {type(m).__name__ for m in units}
        if missing := sorted(wanted - found):
            raise ValueError(f"FSDP transformer_layer_cls names {', '.join(missing)}, but the model "
                             f"({type(model).__name__}) has no submodule of that class")
        return units[::-1]
    if plugin.auto_wrap_policy == "size":
        units: list[nn.Module] = []
        claimed: set[int] = set()

        def visit(module: nn.Module) -> None:  # post-order: children claim their parameters first
            for child in module.children():
                visit(child)
            free = [p for p in module.parameters() if id(p) not in claimed]
            if module is not model and sum(p.numel() for p in free) >= plugin.min_num_params:
                units.append(module)
                claimed.update(id(p) for p in free)

        visit(model)
        return units
    return []


def _replace_child(model: nn.Module, target: nn.Module, replacement: nn.Module) -> None:
    slots = [(parent, name) for parent in model.modules() for name, child in parent.named_children() if child is target]
    for parent, name in slots:
        setattr(parent, name, replacement)


def _sharded_state(model: nn.Module, optimizer) -> dict:
    """This process's shards of the model (and optimizer) state, as torch.distributed.checkpoint saves and loads them."""
    state = {"model": get_model_state_dict(model)}
    if optimizer is not None:
        state["optimizer"] = get_optimizer_state_dict(model, optimizer)
    return state


def _broadcast_from_main(model: nn.Module, device: torch.device) -> None:
    """Every process gets the main process's weights and buffers before sharding, as DDP gives them at wrapping:
    each process keeps one shard, and the shards must come from one model (a script seeding each rank differently
    would otherwise train a mix of every process's own initialisation)."""
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.device == device:
                dist.broadcast(tensor.data, src=0)
            else:  # kept on the CPU for offloading: NCCL sends device memory only
                staged = tensor.data.to(device)
                dist.broadcast(staged, src=0)
                tensor.data.copy_(staged)


class FSDPBackend(Backend):
    """``plugin`` is a ``FullyShardedDataParallelPlugin`` (default: from the ACCEL_FSDP_* environment)."""

    distributed_type = DistributedType.FSDP

    def __init__(self, state, precision, plugin: FullyShardedDataParallelPlugin | None = None):
        super().__init__(state, precision, plugin if plugin is not None else FullyShardedDataParallelPlugin.from_env())
        state.init_process_group()
        exit_hook.register()
        self.mesh = init_device_mesh(state.device.type, (state.num_processes,))
        self._rebound: dict[int, nn.Parameter] = {}  # id(parameter before sharding) -> its DTensor parameter
        if precision.scaler is not None:
            # the inf/NaN check of loss scaling must agree across shards
            from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler

            precision.scaler = ShardedGradScaler(state.device.type)

    def _fully_shard_kwargs(self) -> dict:
        plugin = self.plugin
        kwargs = {"mesh": self.mesh, "reshard_after_forward": plugin.reshard_after_forward}
        param_dtype = plugin.param_dtype or self.precision.dtype
        if param_dtype is not None or plugin.reduce_dtype is not None:
            kwargs["mp_policy"] = MixedPrecisionPolicy(
                param_dtype=param_dtype, reduce_dtype=plugin.reduce_dtype or torch.float32
            )
        if plugin.cpu_offload:
            kwargs["offload_policy"] = CPUOffloadPolicy(pin_memory=torch.cuda.is_available())
        return kwargs

    # -- setup -------------------------------------------------------------------------------------------------
    def prepare_model(self, model: nn.Module, device_placement: bool = True) -> nn.Module:
        if isinstance(model, FSDPModule):
            return model
        if device_placement and not self.plugin.cpu_offload:
            model = model.to(self.state.device)
        if self.state.num_processes > 1:
            _broadcast_from_main(model, self.state.device)
        names_before = {id(p): name for name, p in model.named_parameters()}
        units = units_to_shard(model, self.plugin)
        kwargs = self._fully_shard_kwargs()
        for unit in units:
            if self.plugin.activation_checkpointing:  # wrap first: the recomputation then runs inside the unit
                wrapped = _checkpoint_wrapper()(unit)
                _replace_child(model, unit, wrapped)
                unit = wrapped
            fully_shard(unit, **kwargs)
        fully_shard(model, **kwargs)
        after = {name.replace("_checkpoint_wrapped_module.", ""): p for name, p in model.named_parameters()}
        self._rebound.update({pid: after[name] for pid, name in names_before.items() if name in after})
        return self.precision.wrap_forward(model)

    def prepare_optimizer(self, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        """Point ``optimizer`` at the sharded parameters that replaced the ones it was built with."""
        if optimizer.state:
            raise ValueError("an optimizer with state (it already stepped) cannot be prepared for FSDP: its state "
                             "belongs to the unsharded parameters; prepare it before the first step")
        for group in optimizer.param_groups:
            group["params"] = [self._rebound.get(id(p), p) for p in group["params"]]
        return optimizer

    # -- training step -----------------------------------------------------------------------------------------
    def clip_grad_norm_(self, parameters, max_norm: float, norm_type: float = 2.0) -> torch.Tensor:
        """Clip by the norm over all shards; returns that norm as a plain tensor, the same on every process."""
        norm = nn.utils.clip_grad_norm_(parameters, max_norm, norm_type=norm_type)
        return norm.full_tensor() if hasattr(norm, "full_tensor") else norm

    def no_sync(self, model: nn.Module) -> contextlib.AbstractContextManager:
        return self._without_gradient_sync(unwrap_compiled(model))

    @contextlib.contextmanager
    def _without_gradient_sync(self, model: nn.Module):
        if not isinstance(model, FSDPModule):
            yield
            return
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)

    def teardown(self) -> None:
        """Destroy the process group once every collective has completed (see ``exit_hook``)."""
        exit_hook.quiesce_and_destroy(barrier=True)

    # -- after training ----------------------------------------------------------------------------------------
    def unwrap_model(self, model: nn.Module) -> nn.Module:
        """FSDP2 shards in place: the prepared model is the user's module (its parameters are DTensors)."""
        return unwrap_compiled(model)

    def model_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Full, unsharded weights on CPU, gathered to the main process (an empty dict elsewhere)."""
        return get_model_state_dict(unwrap_compiled(model), options=_FULL)

    def load_model_state_dict(self, model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
        """Load full weights held by the main process (the others may pass ``{}``) into the shards."""
        set_model_state_dict(unwrap_compiled(model), state_dict, options=_FULL_LOAD)

    def optimizer_state_dict(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
        """The full optimizer state keyed by parameter name, on the main process."""
        return get_optimizer_state_dict(unwrap_compiled(model), getattr(optimizer, "optimizer", optimizer),
                                        options=_FULL)

    def load_optimizer_state_dict(self, model: nn.Module, optimizer: torch.optim.Optimizer, state_dict: dict) -> None:
        set_optimizer_state_dict(unwrap_compiled(model), getattr(optimizer, "optimizer", optimizer), state_dict,
                                 options=_FULL_LOAD)

    def save_checkpoint(self, directory: str | os.PathLike, model: nn.Module, optimizer=None) -> None:
        """Model (and optimizer) state under ``directory``: one ``full`` file written by the main process, or
        the ``sharded`` distributed-checkpoint format (each process writes its shards), per the plugin."""
        import torch.distributed.checkpoint as dcp

        model = unwrap_compiled(model)
        inner = getattr(optimizer, "optimizer", optimizer)
        if self.plugin.state_dict_type == "sharded":
            state = _sharded_state(model, inner)
            dcp.save(state, checkpoint_id=os.fspath(directory))
            return
        state = {"model": self.model_state_dict(model)}
        if inner is not None:
            state["optimizer"] = self.optimizer_state_dict(model, inner)
        if self.state.is_main_process:
            os.makedirs(directory, exist_ok=True)
            torch.save(state, os.path.join(directory, "fsdp_full.pt"))
        self.barrier()

    def load_checkpoint(self, directory: str | os.PathLike, model: nn.Module, optimizer=None) -> None:
        """Restore what ``save_checkpoint`` wrote (same ``state_dict_type``)."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import set_state_dict

        model = unwrap_compiled(model)
        inner = getattr(optimizer, "optimizer", optimizer)
        if self.plugin.state_dict_type == "sharded":
            state = _sharded_state(model, inner)
            dcp.load(state, checkpoint_id=os.fspath(directory))
            set_state_dict(model, [inner] if inner is not None else [], model_state_dict=state["model"],
                           optim_state_dict=state.get("optimizer", {}))
            return
        path = os.path.join(directory, "fsdp_full.pt")
        state = torch.load(path, weights_only=True) if self.state.is_main_process else {}
        self.load_model_state_dict(model, state.get("model", {}))
        if inner is not None:
            self.load_optimizer_state_dict(model, inner, state.get("optimizer", {}))
