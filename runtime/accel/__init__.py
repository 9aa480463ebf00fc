"""accel: run a PyTorch training script on any device and any number of processes.

The API follows Hugging Face Accelerate's: ``from accel import Accelerator``. Names are loaded on first use, so
``accel launch`` / ``accel config`` start without importing torch.
"""

import importlib

_EXPORTS = {
    "Accelerator": "accelerator",
    "DistributedType": "state",
    "set_seed": "utils",
    "FullyShardedDataParallelPlugin": "plugins",
    "DeepSpeedPlugin": "plugins",
    "DistributedDataParallelKwargs": "kwargs_handlers",
    "DDPCommunicationHookType": "kwargs_handlers",
    "load_checkpoint_in_model": "model_files",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'accel' has no attribute {name!r}")
    try:
        value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    except ModuleNotFoundError as error:
        if error.name == "torch":
            raise ImportError(
                "the accel runtime needs PyTorch (torch>=2.6): pip install 'accel-convert[runtime]'"
            ) from error
        raise
    globals()[name] = value
    return value
