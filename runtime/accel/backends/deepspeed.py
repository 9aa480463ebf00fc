"""DeepSpeed ZeRO (stages 0-3, optimizer and parameter offload to CPU) behind the Backend interface.

``prepare`` builds one ``DeepSpeedEngine`` from the user's model and optimizer. ``accelerator.backward`` runs
the engine's backward and, at the end of an accumulation window, the engine's step (clipping, loss scaling,
optimizer step, zeroing the gradients all happen inside it); ``optimizer.step()`` then only reports whether
the step was applied, as in Hugging Face Accelerate. LR schedulers are not handed to the engine: the
``AcceleratedScheduler`` steps them after each applied step, the same as with the other backends.
"""

from __future__ import annotations

import contextlib
import os
import socket

import torch
import torch.distributed as dist
from torch import nn

from ..plugins import DeepSpeedPlugin
from ..state import DistributedType
from ..utils import env_int
from . import exit_hook
from .base import Backend
from .deepspeed_config import build_config
from .single import unwrap_compiled

INSTALL_HINT = "pip install 'accel-convert[deepspeed]' (in a checkout: pip install -e '.[deepspeed]')"


def import_deepspeed(device_type: str):
    """Import ``deepspeed``; on a CPU run its accelerator is pinned to CPU first (it would pick CUDA if present)."""
    if device_type == "cpu":
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    try:
        import deepspeed
    except ImportError as err:
        raise ImportError(f"the DeepSpeed backend needs the deepspeed package, which is not installed: "
                          f"{INSTALL_HINT}") from err
    return deepspeed


def _init_single_process_group(state) -> None:
    """DeepSpeed needs a process group even for one process: the launcher's rendezvous under ``accel launch``
    (torchrun's agent serves the store there), else a private one on a free local port."""
    if os.environ.get("MASTER_ADDR") and os.environ.get("MASTER_PORT"):
        state.init_process_group()
        return
    for name, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1")):
        os.environ.setdefault(name, value)  # DeepSpeed reads these itself
    device = state.device
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)


class DeepSpeedBackend(Backend):
    """One DeepSpeed engine per process; ``plugin`` is a ``DeepSpeedPlugin`` (default: from the environment)."""

    distributed_type = DistributedType.DEEPSPEED

    def __init__(self, state, precision, plugin: DeepSpeedPlugin | None = None):
        super().__init__(state, precision, plugin if plugin is not None else DeepSpeedPlugin.from_env())
        self.deepspeed = import_deepspeed(state.device.type)
        if state.num_processes > 1:
            state.init_process_group()
        elif not dist.is_initialized():
            _init_single_process_group(state)
        exit_hook.register()
        # DeepSpeed scales fp16 losses and skips overflowing steps itself; a second GradScaler would fight it.
        precision.scaler = None
        self.engine = None
        self.gradient_accumulation_steps = env_int("ACCEL_GRADIENT_ACCUMULATION_STEPS", 1)
        self.micro_batch_size: int | None = None
        self._no_sync_depth = 0

    def observe_training(self, gradient_accumulation_steps: int, micro_batch_size: int | None) -> None:
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self.micro_batch_size = micro_batch_size

    # -- setup -------------------------------------------------------------------------------------------------
    def prepare_model(self, model: nn.Module, device_placement: bool = True) -> nn.Module:
        models, _ = self.prepare_models_and_optimizers([model], [], device_placement)
        return models[0]

    def prepare_optimizer(self, optimizer):
        raise ValueError("with DeepSpeed, prepare the optimizer together with its model: "
                         "accelerator.prepare(model, optimizer, ...)")

    def prepare_models_and_optimizers(self, models, optimizers, device_placement=True):
        if not models:
            if optimizers:
                self.prepare_optimizer(optimizers[0])
            return [], []
        if self.engine is not None or len(models) > 1 or len(optimizers) > 1:
            raise ValueError(f"DeepSpeed trains one model with at most one optimizer per Accelerator; got "
                             f"{len(models)} model(s) and {len(optimizers)} optimizer(s)"
                             + (" after a model was already prepared" if self.engine is not None else ""))
        config = build_config(
            self.plugin, mixed_precision=self.precision.mode,
            gradient_accumulation_steps=self.gradient_accumulation_steps,
            micro_batch_size=self.micro_batch_size, world_size=self.state.num_processes,
        )
        model = self.precision.wrap_forward(models[0])  # fp32 inputs meet bf16/fp16 weights under autocast
        engine, ds_optimizer, _, _ = self.deepspeed.initialize(
            model=model, optimizer=optimizers[0] if optimizers else None, config=config, dist_init_required=False,
        )
        self.engine = engine
        return [engine], ([ds_optimizer] if optimizers else [])

    # -- training step -----------------------------------------------------------------------------------------
    def backward(self, loss: torch.Tensor, **kwargs) -> None:
        """Engine backward (the Accelerator already divided the loss by the accumulation steps), then the engine
        step when this micro-batch ends an accumulation window (outside ``no_sync``)."""
        boundary = self._no_sync_depth == 0
        self.engine.set_gradient_accumulation_boundary(boundary)
        self.engine.backward(loss, scale_wrt_gas=False, **kwargs)
        if boundary:
            self.engine.step()

    def optimizer_step(self, optimizer, closure=None) -> bool:
        """The engine stepped during backward; report whether that step was applied (False on fp16 overflow)."""
        return self.engine.was_step_applied()

    def unscale_gradients(self, optimizer) -> None:
        """DeepSpeed unscales inside its step."""

    def clip_grad_norm_(self, parameters, max_norm: float, norm_type: float = 2.0) -> torch.Tensor:
        """DeepSpeed clips inside its step, to the config's ``gradient_clipping``; that value must be ``max_norm``.

        Returns the total norm DeepSpeed computed in the step of this window (NaN when it computed none).
        """
        configured = self.engine.gradient_clipping()
        if float(norm_type) != 2.0 or not configured or abs(configured - max_norm) > 1e-12 * max(1.0, max_norm):
            raise ValueError(
                f"clip_grad_norm_(max_norm={max_norm}, norm_type={norm_type}) under DeepSpeed: DeepSpeed clips the "
                f"2-norm inside its step to the config's gradient_clipping, which is {configured or 'unset'}; set "
                f"gradient_clipping to {max_norm} (accel launch --gradient-clipping {max_norm}, "
                f"DeepSpeedPlugin(gradient_clipping={max_norm}) or the DeepSpeed config)"
            )
        norm = self.engine.get_global_grad_norm()
        return torch.tensor(float("nan") if norm is None else float(norm))

    def clip_grad_value_(self, parameters, clip_value: float) -> None:
        raise ValueError("clip_grad_value_ is not supported under DeepSpeed (it clips only the gradient norm); "
                         "use clip_grad_norm_ with the config's gradient_clipping")

    def no_sync(self, model: nn.Module) -> contextlib.AbstractContextManager:
        return self._outside_boundary()

    @contextlib.contextmanager
    def _outside_boundary(self):
        self._no_sync_depth += 1
        try:
            yield
        finally:
            self._no_sync_depth -= 1

    # -- after training ----------------------------------------------------------------------------------------
    def unwrap_model(self, model: nn.Module) -> nn.Module:
        """The user's module (under ZeRO-3 its parameters stay partitioned; ``model_state_dict`` gathers them)."""
        model = unwrap_compiled(model)
        return unwrap_compiled(getattr(model, "module", model)) if model is self.engine else model

    def model_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Full weights on CPU on the main process (an empty dict elsewhere); ZeRO-3 gathers every parameter."""
        module = self.unwrap_model(model)
        zero3 = self.engine is not None and self.engine.zero_optimization_stage() == 3
        gathered = (self.deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None)
                    if zero3 else contextlib.nullcontext())
        with gathered:
            if not self.state.is_main_process:
                return {}
            return {name: tensor.detach().cpu().clone() for name, tensor in module.state_dict().items()}

    def save_checkpoint(self, directory: str | os.PathLike, model: nn.Module | None = None, optimizer=None) -> None:
        """The engine's own checkpoint (model, optimizer and ZeRO partitions) under ``directory``; every process
        calls it. ``model`` and ``optimizer`` are the engine's anyway (the signature is FSDP's)."""
        self.engine.save_checkpoint(os.fspath(directory), tag="accel")

    def load_checkpoint(self, directory: str | os.PathLike, model: nn.Module | None = None, optimizer=None) -> None:
        """Restore what ``save_checkpoint`` wrote; every process."""
        path, _ = self.engine.load_checkpoint(os.fspath(directory), tag="accel")
        if path is None:
            raise FileNotFoundError(f"no DeepSpeed checkpoint under {os.fspath(directory)} (tag 'accel')")

    def teardown(self) -> None:
        """Remove the engine's hooks, then destroy the process group once every collective has completed."""
        if self.engine is not None:
            self.engine.destroy()
        exit_hook.quiesce_and_destroy(barrier=True)
