"""``Accelerator``: the small facade converted scripts use. It composes the process state, a backend, the
precision and the data-loader sharding; the logic lives in those parts."""

from __future__ import annotations

import contextlib
import functools
import gc
import os
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from . import checkpoint, ops
from .backends import create_backend
from .data import PreparedDataLoader, prepare_data_loader
from .data import skip_first_batches as _skip_first_batches
from .kwargs_handlers import KwargsHandler, sort_handlers
from .model_files import save_weights
from .optimizer import AcceleratedOptimizer
from .precision import PRECISIONS, Precision
from .scheduler import AcceleratedScheduler
from .state import DistributedType, GradientState, ProcessState
from .utils import env_choice, env_int, save_atomic

_PREPARABLE = "torch.nn.Module, torch.optim.Optimizer, torch.utils.data.DataLoader, torch.optim.lr_scheduler.LRScheduler"


def _is_scheduler(obj: Any) -> bool:
    return isinstance(obj, torch.optim.lr_scheduler.LRScheduler) or (
        hasattr(obj, "step") and isinstance(getattr(obj, "optimizer", None), torch.optim.Optimizer)
    )


class Accelerator:
    """Runs a training script on one device or data-parallel over several processes, with the same code.

    Arguments left as None come from the environment ``accel launch`` sets (ACCEL_MIXED_PRECISION,
    ACCEL_GRADIENT_ACCUMULATION_STEPS, ACCEL_USE_CPU), else from the defaults ``"no"``, 1 and False.
    ``kwargs_handlers`` holds options for the objects it creates (``DistributedDataParallelKwargs``).
    """

    def __init__(
        self,
        mixed_precision: str | None = None,
        gradient_accumulation_steps: int | None = None,
        cpu: bool | None = None,
        split_batches: bool = False,
        even_batches: bool = True,
        step_scheduler_with_optimizer: bool = True,
        device_placement: bool = True,
        fsdp_plugin: Any = None,
        deepspeed_plugin: Any = None,
        kwargs_handlers: list[KwargsHandler] | None = None,
    ):
        if mixed_precision is None:
            mixed_precision = env_choice("ACCEL_MIXED_PRECISION", PRECISIONS, "no")
        if gradient_accumulation_steps is None:
            gradient_accumulation_steps = env_int("ACCEL_GRADIENT_ACCUMULATION_STEPS", 1)
        _check_accumulation_steps(gradient_accumulation_steps)
        handlers = sort_handlers(kwargs_handlers)
        self.ddp_handler = handlers.get("ddp_handler")
        self.state = ProcessState(cpu=cpu)
        self.precision = Precision(mixed_precision, self.state.device)
        self.backend = create_backend(self.state, self.precision, fsdp_plugin, deepspeed_plugin, self.ddp_handler)
        self.gradient_state = GradientState(gradient_accumulation_steps)
        self.split_batches = split_batches
        self.even_batches = even_batches
        self.step_scheduler_with_optimizer = step_scheduler_with_optimizer
        self.device_placement = device_placement
        self._models: list[nn.Module] = []
        self._optimizers: list[AcceleratedOptimizer] = []
        self._schedulers: list[AcceleratedScheduler] = []
        self._dataloaders: list[PreparedDataLoader] = []
        self._custom_objects: list[Any] = []

    # -- who and where -----------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.state.device

    @property
    def process_index(self) -> int:
        return self.state.process_index

    @property
    def local_process_index(self) -> int:
        return self.state.local_process_index

    @property
    def num_processes(self) -> int:
        return self.state.num_processes

    @property
    def is_main_process(self) -> bool:
        return self.state.is_main_process

    @property
    def is_local_main_process(self) -> bool:
        return self.state.is_local_main_process

    @property
    def is_last_process(self) -> bool:
        return self.state.is_last_process

    @property
    def use_distributed(self) -> bool:
        return self.state.use_distributed

    @property
    def distributed_type(self) -> DistributedType:
        return self.backend.distributed_type

    @property
    def mixed_precision(self) -> str:
        return self.precision.mode

    @property
    def scaler(self) -> torch.amp.GradScaler | None:
        return self.precision.scaler

    @property
    def sync_gradients(self) -> bool:
        return self.gradient_state.sync_gradients

    @property
    def gradient_accumulation_steps(self) -> int:
        return self.gradient_state.gradient_accumulation_steps

    @gradient_accumulation_steps.setter
    def gradient_accumulation_steps(self, value: int) -> None:
        _check_accumulation_steps(value)
        self.gradient_state.gradient_accumulation_steps = value

    @property
    def optimizer_step_was_skipped(self) -> bool:
        return any(opt.step_was_skipped for opt in self._optimizers)

    # -- prepare -----------------------------------------------------------------------------------------------
    def prepare(self, *args: Any) -> Any:
        """Prepare models, optimizers, DataLoaders and LR schedulers (any number, any order); same order back.

        ``None`` comes back as ``None`` (an optional optimizer, ``Adam(...) if fine_tune else None``), as Hugging
        Face Accelerate passes it through; any other object of an unknown type is an error naming its type."""
        for position, obj in enumerate(args, 1):
            if obj is None:
                continue
            if not isinstance(obj, (nn.Module, torch.optim.Optimizer, DataLoader, AcceleratedScheduler)) and not _is_scheduler(obj):
                kind = type(obj)
                raise TypeError(
                    f"prepare() cannot handle argument {position} of {len(args)}, an object of type "
                    f"{kind.__module__}.{kind.__qualname__}; allowed: {_PREPARABLE} (or None). An object made by a "
                    "factory (build_optimizer(...), a model's configure_optimizers()) must return one of them"
                )
        result = list(args)
        models = [i for i, o in enumerate(args) if isinstance(o, nn.Module) and not self._is_prepared_model(o)]
        optimizers = [i for i, o in enumerate(args) if isinstance(o, torch.optim.Optimizer)
                      and not isinstance(o, AcceleratedOptimizer)]
        self.backend.observe_training(self.gradient_accumulation_steps, self._per_process_batch_size(args))
        new_models, new_optimizers = self.backend.prepare_models_and_optimizers(
            [args[i] for i in models], [args[i] for i in optimizers], self.device_placement
        )
        for i, model in zip(models, new_models):
            result[i] = model
            self._models.append(model)
        for i, optimizer in zip(optimizers, new_optimizers):
            result[i] = self._wrap_optimizer(optimizer)
        for i, obj in enumerate(args):
            if isinstance(obj, DataLoader):
                result[i] = self.prepare_data_loader(obj)
            elif _is_scheduler(obj) and not isinstance(obj, torch.optim.Optimizer):
                result[i] = self.prepare_scheduler(obj)
        return result[0] if len(result) == 1 else tuple(result)

    def _per_process_batch_size(self, objects) -> int | None:
        """The batch size each process gets from the first DataLoader among ``objects`` (None without one)."""
        loader = next((o for o in objects if isinstance(o, DataLoader)), None)
        if loader is None:
            return None
        size = loader.batch_size if loader.batch_size is not None else getattr(loader.batch_sampler, "batch_size", None)
        return size // self.num_processes if size is not None and self.split_batches else size

    def _is_prepared_model(self, model: nn.Module) -> bool:
        return any(model is m for m in self._models)

    def prepare_model(self, model: nn.Module, device_placement: bool | None = None) -> nn.Module:
        """Prepare one model (see ``prepare``)."""
        if self._is_prepared_model(model):
            return model
        placement = self.device_placement if device_placement is None else device_placement
        model = self.backend.prepare_model(model, placement)
        self._models.append(model)
        return model

    def prepare_optimizer(self, optimizer: torch.optim.Optimizer) -> AcceleratedOptimizer:
        """Prepare one optimizer (see ``prepare``)."""
        if isinstance(optimizer, AcceleratedOptimizer):
            return optimizer
        return self._wrap_optimizer(self.backend.prepare_optimizer(optimizer))

    def _wrap_optimizer(self, optimizer: torch.optim.Optimizer) -> AcceleratedOptimizer:
        wrapped = AcceleratedOptimizer(optimizer, self.backend, self.gradient_state, self.device_placement)
        self._optimizers.append(wrapped)
        return wrapped

    def prepare_data_loader(self, data_loader: DataLoader) -> PreparedDataLoader:
        """Shard one DataLoader for this process and move its batches to the device (see ``prepare``)."""
        if isinstance(data_loader, PreparedDataLoader):
            return data_loader
        prepared = prepare_data_loader(
            data_loader, self.gradient_state, self.num_processes, self.process_index,
            self.device if self.device_placement else None, self._broadcast_seed,
            split_batches=self.split_batches, even_batches=self.even_batches,
        )
        self._dataloaders.append(prepared)
        return prepared

    def prepare_scheduler(self, scheduler) -> AcceleratedScheduler:
        """Wrap one LR scheduler so that it steps with its prepared optimizers (see ``prepare``)."""
        if isinstance(scheduler, AcceleratedScheduler):
            return scheduler
        target = scheduler.optimizer
        optimizers = [o for o in self._optimizers if o is target or o.optimizer is target]
        wrapped = AcceleratedScheduler(
            scheduler, optimizers, self.gradient_state, self.num_processes,
            self.split_batches, self.step_scheduler_with_optimizer,
        )
        self._schedulers.append(wrapped)
        return wrapped

    def _broadcast_seed(self, seed: int) -> int:
        return int(self.broadcast(torch.tensor([seed], dtype=torch.int64, device=self.device)).item())

    def skip_first_batches(self, dataloader: PreparedDataLoader, num_batches: int = 0) -> PreparedDataLoader:
        """A prepared loader that starts after the first ``num_batches`` batches (to resume mid-epoch)."""
        return _skip_first_batches(dataloader, num_batches)

    # -- training step -----------------------------------------------------------------------------------------
    def backward(self, loss: torch.Tensor, **kwargs) -> None:
        """``loss.backward()``, divided by ``gradient_accumulation_steps`` and scaled under fp16."""
        steps = self.gradient_state.gradient_accumulation_steps
        if steps > 1:
            loss = loss / steps
        self.backend.backward(loss, **kwargs)

    def autocast(self) -> contextlib.AbstractContextManager:
        """A context running its body under the mixed-precision autocast (prepared models already do)."""
        return self.precision.autocast()

    @contextlib.contextmanager
    def accumulate(self, *models: nn.Module):
        """Context for one micro-batch: gradients are synchronised and optimizers step on every
        ``gradient_accumulation_steps``-th micro-batch and on the last batch of the data loader."""
        self.gradient_state.advance()
        if self.gradient_state.sync_gradients:
            yield
            return
        with contextlib.ExitStack() as stack:
            for model in models:
                stack.enter_context(self.backend.no_sync(model))
            yield

    def no_sync(self, model: nn.Module) -> contextlib.AbstractContextManager:
        """Context in which backward does not synchronise ``model``'s gradients across processes."""
        return self.backend.no_sync(model)

    def unscale_gradients(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Under fp16, divide the gradients by the loss scale now (at most once per step); otherwise nothing."""
        targets = self._optimizers if optimizer is None else [optimizer]
        for opt in targets:
            self.backend.unscale_gradients(getattr(opt, "optimizer", opt))

    def clip_grad_norm_(self, parameters, max_norm: float, norm_type: float = 2) -> torch.Tensor:
        """Clip the total gradient norm of ``parameters`` (unscaling fp16 gradients first); returns the norm."""
        self.unscale_gradients()
        return self.backend.clip_grad_norm_(parameters, max_norm, norm_type)

    def clip_grad_value_(self, parameters, clip_value: float) -> None:
        """Clamp the gradients of ``parameters`` to ``[-clip_value, clip_value]`` (unscaling fp16 gradients first)."""
        self.unscale_gradients()
        self.backend.clip_grad_value_(parameters, clip_value)

    # -- communication -----------------------------------------------------------------------------------------
    def gather(self, tensor: Any) -> Any:
        """Concatenate ``tensor`` (or each tensor of a nested structure) from all processes along dim 0."""
        return ops.gather(self.backend, tensor)

    def gather_for_metrics(self, input_data: Any, use_gather_object: bool = False) -> Any:
        """``gather``, minus the samples the data loader repeated to even out its last batch."""
        tensors = not use_gather_object and ops.is_tensor_structure(input_data)
        data = ops.gather(self.backend, input_data) if tensors else ops.gather_object(self.backend, input_data)
        keep = self.gradient_state.real_samples_in_batch
        if keep > 0:
            return ops.apply_to_tensors(lambda t: t[:keep], data) if tensors else data[:keep]
        return data

    def reduce(self, tensor: Any, reduction: str = "sum") -> Any:
        """Reduce ``tensor`` (or a nested structure) over all processes: ``sum``, ``mean``, ``max`` or ``none``."""
        return ops.reduce(self.backend, tensor, reduction)

    def pad_across_processes(self, tensor: Any, dim: int = 0, pad_index: int = 0, pad_first: bool = False) -> Any:
        """Pad ``tensor`` along ``dim`` to the largest size on any process, so that it can be gathered."""
        return ops.pad_across_processes(self.backend, tensor, dim, pad_index, pad_first)

    def broadcast(self, tensor: Any, from_process: int = 0) -> Any:
        """Process ``from_process``'s value of ``tensor`` (or each tensor of a nested structure) on every process."""
        return ops.broadcast(self.backend, tensor, from_process)

    def wait_for_everyone(self) -> None:
        """Block until every process gets here. Call it on all processes, never under ``if is_main_process``."""
        self.backend.barrier()

    # -- process control ---------------------------------------------------------------------------------------
    def print(self, *args, **kwargs) -> None:
        """``print`` on the local main process only."""
        if self.is_local_main_process:
            print(*args, **kwargs)

    @contextlib.contextmanager
    def main_process_first(self):
        """The main process runs the body first, the others after it finished (e.g. download, preprocess)."""
        with self._first(self.is_main_process):
            yield

    @contextlib.contextmanager
    def local_main_process_first(self):
        """The local main process of each machine runs the body first, the others after it."""
        with self._first(self.is_local_main_process):
            yield

    @contextlib.contextmanager
    def _first(self, leader: bool):
        if not leader:
            self.wait_for_everyone()
        yield
        if leader:
            self.wait_for_everyone()

    def on_main_process(self, function: Callable) -> Callable:
        """Decorator: run ``function`` on the main process only (returns None elsewhere)."""
        return self._only_if(function, lambda: self.is_main_process)

    def on_local_main_process(self, function: Callable) -> Callable:
        """Decorator: run ``function`` on the local main process of each machine only."""
        return self._only_if(function, lambda: self.is_local_main_process)

    def on_process(self, function: Callable | None = None, process_index: int | None = None) -> Callable:
        """Decorator: run ``function`` only on process ``process_index``."""
        if function is None:
            return functools.partial(self.on_process, process_index=process_index)
        return self._only_if(function, lambda: self.process_index == process_index)

    @staticmethod
    def _only_if(function: Callable, condition: Callable[[], bool]) -> Callable:
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            if condition():
                return function(*args, **kwargs)
            return None

        return wrapper

    @contextlib.contextmanager
    def split_between_processes(self, inputs: Any, apply_padding: bool = False):
        """Yield this process's contiguous share of ``inputs`` (list, tuple, dict of lists, tensor).

        Shares differ by at most one item; ``apply_padding`` repeats the last item so all have the same length.
        """
        yield ops.split_for_process(inputs, self.num_processes, self.process_index, apply_padding)

    # -- models and files --------------------------------------------------------------------------------------
    def unwrap_model(self, model: nn.Module, keep_fp32_wrapper: bool = True) -> nn.Module:
        """The user's module inside the wrappers ``prepare`` added; ``keep_fp32_wrapper=False`` also removes
        the mixed-precision forward wrapper."""
        model = self.backend.unwrap_model(model)
        if not keep_fp32_wrapper:
            self.precision.unwrap_forward(model)
        return model

    def get_state_dict(self, model: nn.Module, unwrap: bool = True) -> dict[str, torch.Tensor]:
        """The full state dict of a prepared model (gathered by sharding backends)."""
        return self.backend.model_state_dict(model) if unwrap else model.state_dict()

    def save(self, obj: Any, f: str | os.PathLike) -> None:
        """``torch.save`` on the main process only, atomically (temporary file, then ``os.replace``)."""
        if not self.is_main_process:
            return
        save_atomic(obj, f)

    def save_model(self, model: nn.Module, save_directory: str | os.PathLike, max_shard_size: int | str = "10GB",
                   safe_serialization: bool = True) -> None:
        """The unwrapped model's full weights in ``save_directory`` (main process): ``model.safetensors``, or
        several files and an index beyond ``max_shard_size``; ``pytorch_model.bin`` without ``safe_serialization``.
        Gathers sharded weights first: call it on every process. Read back with ``accel.load_checkpoint_in_model``."""
        state_dict = self.get_state_dict(model)
        if self.is_main_process:
            save_weights(state_dict, save_directory, max_shard_size, safe_serialization)

    def register_for_checkpointing(self, *objects: Any) -> None:
        """Have ``save_state``/``load_state`` also save/restore ``objects`` (anything with ``state_dict`` and
        ``load_state_dict``), in the order registered."""
        for obj in objects:
            checkpoint.check_stateful(obj)
        self._custom_objects.extend(objects)

    def save_state(self, output_dir: str | os.PathLike | None = None, safe_serialization: bool = True) -> str:
        """Save models, optimizers, schedulers, the fp16 scaler, registered objects, RNG states and DataLoader
        positions to ``output_dir``, atomically; returns its path. Call it on every process (collectives inside)."""
        return checkpoint.save_state(self, output_dir, safe_serialization)

    def load_state(self, input_dir: str | os.PathLike) -> None:
        """Restore what ``save_state`` wrote; then ``skip_first_batches(loader, loader.position.batches_seen)``
        continues the interrupted pass. Call it on every process."""
        checkpoint.load_state(self, input_dir)

    def free_memory(self, *objects: Any) -> list[None]:
        """Forget every prepared object, collect garbage and empty the CUDA cache; returns Nones for ``objects``."""
        self._models.clear()
        self._optimizers.clear()
        self._schedulers.clear()
        self._dataloaders.clear()
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return [None] * len(objects)

    def end_training(self) -> None:
        """Finish: wait for all processes and tear the backend (and the process group) down."""
        self.wait_for_everyone()
        self.backend.teardown()

    def __repr__(self) -> str:
        return (f"Accelerator(distributed_type={self.distributed_type.value}, num_processes={self.num_processes}, "
                f"process_index={self.process_index}, device={self.device}, mixed_precision={self.mixed_precision})")


def _check_accumulation_steps(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"gradient_accumulation_steps must be a positive integer (1, 2, ...); got {value!r}")
