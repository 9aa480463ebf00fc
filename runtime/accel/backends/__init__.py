"""Backends and how one is chosen.

``select_backend`` decides by name from the plugins given and the launcher's environment; ``create_backend``
imports that backend's module lazily (FSDP and DeepSpeed pull in heavy dependencies) and builds it.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..precision import Precision
from ..state import ProcessState
from ..utils import env_bool
from .base import Backend

#: backend name -> (module inside accel.backends, class name)
BACKENDS: dict[str, tuple[str, str]] = {
    "single": ("single", "SingleDeviceBackend"),
    "ddp": ("ddp", "DDPBackend"),
    "fsdp": ("fsdp", "FSDPBackend"),
    "deepspeed": ("deepspeed", "DeepSpeedBackend"),
}


def select_backend(state: ProcessState, fsdp_plugin: Any = None, deepspeed_plugin: Any = None) -> str:
    """Name of the backend to use: DeepSpeed or FSDP when asked for (plugin or ACCEL_USE_* variable), else DDP
    with more than one process, else single device."""
    use_deepspeed = deepspeed_plugin is not None or env_bool("ACCEL_USE_DEEPSPEED", False)
    use_fsdp = fsdp_plugin is not None or env_bool("ACCEL_USE_FSDP", False)
    if use_deepspeed and use_fsdp:
        raise ValueError("FSDP and DeepSpeed cannot be used together; pass only one of fsdp_plugin / deepspeed_plugin")
    if use_deepspeed:
        return "deepspeed"
    if use_fsdp:
        return "fsdp"
    return "ddp" if state.num_processes > 1 else "single"


def load_backend_class(name: str) -> type[Backend]:
    """The Backend subclass registered under ``name``."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; allowed: {', '.join(BACKENDS)}")
    module_name, class_name = BACKENDS[name]
    try:
        module = importlib.import_module(f"{__name__}.{module_name}")
    except ModuleNotFoundError as err:
        if err.name != f"{__name__}.{module_name}":
            raise
        raise NotImplementedError(
            f"the {name!r} backend (accel/backends/{module_name}.py) is not available in this version of accel"
        ) from None
    return getattr(module, class_name)


def create_backend(
    state: ProcessState, precision: Precision, fsdp_plugin: Any = None, deepspeed_plugin: Any = None,
    ddp_handler: Any = None,
) -> Backend:
    """Select and build the backend for this process; the DDP backend's plugin is the
    ``DistributedDataParallelKwargs`` handler (its options are unused by the other backends)."""
    name = select_backend(state, fsdp_plugin, deepspeed_plugin)
    plugin = {"fsdp": fsdp_plugin, "deepspeed": deepspeed_plugin, "ddp": ddp_handler}.get(name)
    return load_backend_class(name)(state, precision, plugin)


__all__ = ["BACKENDS", "Backend", "create_backend", "load_backend_class", "select_backend"]
