"""Build the DeepSpeed config: the user's config, with what the Accelerator knows filled in or checked.

Pure dictionary work (no ``deepspeed`` import), so that conflicts are reported before anything is built.
A value of ``"auto"`` in the user's config counts as unset, as in Hugging Face Accelerate.
"""

from __future__ import annotations

from typing import Any

from ..plugins import DeepSpeedPlugin

DEFAULT_ZERO_STAGE = 2


def _unset(value: Any) -> bool:
    return value is None or value == "auto"


def _get(config: dict, path: str) -> Any:
    node: Any = config
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _put(config: dict, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value


class _Settler:
    """Fills unset keys of ``config`` and reports disagreements naming both values and their sources."""

    def __init__(self, config: dict, source: str):
        self.config = config
        self.source = source

    def settle(self, path: str, ours: Any, ours_from: str) -> None:
        theirs = _get(self.config, path)
        if _unset(theirs):
            if ours is not None:
                _put(self.config, path, ours)
        elif ours is not None and theirs != ours:
            raise ValueError(
                f"{self.source} sets {path}={theirs!r} but {ours_from} is {ours!r}; "
                f"make them agree or remove {path} from the DeepSpeed config"
            )


def build_config(plugin: DeepSpeedPlugin, *, mixed_precision: str, gradient_accumulation_steps: int,
                 micro_batch_size: int | None, world_size: int) -> dict:
    """The config handed to ``deepspeed.initialize`` (a new dict; the plugin's is not modified)."""
    config, source = plugin.load_config()
    settler = _Settler(config, source)
    settler.settle("train_micro_batch_size_per_gpu", micro_batch_size, "the prepared DataLoader's batch size")
    if _unset(_get(config, "train_micro_batch_size_per_gpu")) and _unset(_get(config, "train_batch_size")):
        # DeepSpeed insists on a batch size but only reports throughput with it; the DataLoader decides batches.
        config["train_micro_batch_size_per_gpu"] = 1
    settler.settle("gradient_accumulation_steps", gradient_accumulation_steps,
                   "the Accelerator's gradient_accumulation_steps")
    _check_train_batch_size(config, source, world_size)
    settler.settle("gradient_clipping", plugin.gradient_clipping, "gradient_clipping (--gradient-clipping)")
    _settle_precision(config, source, mixed_precision)
    settler.settle("zero_optimization.stage", plugin.zero_stage, "zero_stage (--zero-stage)")
    if _unset(_get(config, "zero_optimization.stage")):
        _put(config, "zero_optimization.stage", DEFAULT_ZERO_STAGE)
    settler.settle("zero_optimization.offload_optimizer.device", plugin.offload_optimizer_device,
                   "offload_optimizer_device (--offload-optimizer)")
    settler.settle("zero_optimization.offload_param.device", plugin.offload_param_device,
                   "offload_param_device (--offload-param)")
    _check_offload(config, source)
    # the script's own torch optimizer (SGD, Adagrad, ...) is what ZeRO partitions; DeepSpeed asks for consent
    config.setdefault("zero_allow_untested_optimizer", True)
    if _get(config, "zero_optimization.offload_optimizer.device") == "cpu" and "zero_force_ds_cpu_optimizer" not in config:
        # the script's own torch optimizer steps on CPU (slower than DeepSpeedCPUAdam, but no script change)
        config["zero_force_ds_cpu_optimizer"] = False
    return config


def _check_train_batch_size(config: dict, source: str, world_size: int) -> None:
    total = _get(config, "train_batch_size")
    micro = _get(config, "train_micro_batch_size_per_gpu")
    steps = _get(config, "gradient_accumulation_steps")
    if _unset(total):
        config.pop("train_batch_size", None)
        return
    if not _unset(micro) and total != micro * steps * world_size:
        raise ValueError(
            f"{source} sets train_batch_size={total!r} but train_micro_batch_size_per_gpu ({micro}) x "
            f"gradient_accumulation_steps ({steps}) x processes ({world_size}) is {micro * steps * world_size}"
        )


def _settle_precision(config: dict, source: str, mixed_precision: str) -> None:
    for mode in ("fp16", "bf16"):
        enabled = _get(config, f"{mode}.enabled")
        if _unset(enabled):
            _put(config, f"{mode}.enabled", mixed_precision == mode)
        elif bool(enabled) != (mixed_precision == mode):
            raise ValueError(
                f"{source} sets {mode}.enabled={enabled!r} but the Accelerator's mixed_precision is "
                f"{mixed_precision!r}; make them agree (--mixed-precision {mode if enabled else 'no'}) "
                f"or remove {mode} from the DeepSpeed config"
            )


def _check_offload(config: dict, source: str) -> None:
    stage = _get(config, "zero_optimization.stage")
    for key, minimum in (("offload_optimizer", 1), ("offload_param", 3)):
        device = _get(config, f"zero_optimization.{key}.device")
        if device not in (None, "none") and stage < minimum:
            raise ValueError(f"{source}: zero_optimization.{key}.device={device!r} needs ZeRO stage >= {minimum}, "
                             f"but zero_optimization.stage is {stage}")
        if device == "none":
            del config["zero_optimization"][key]
