"""The launcher's settings: one table that names each setting's flag, config-file key, parser and default,
and the rules that tie settings together (checked once every source is merged)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import values as v


@dataclass(frozen=True)
class Setting:
    name: str
    flag: str  # the command-line flag; switches also get `--no-...`
    key: str | None  # dotted path in the config file; None where the file spells it otherwise (distributed_type)
    parse: Callable[[object], object]
    default: object
    help: str
    switch: bool = False
    metavar: str | None = None  # how --help shows the value


def _reshard(raw) -> bool:
    """FSDP2's reshard-after-forward, also accepting Accelerate's FSDP1 sharding strategies that mean the same."""
    if isinstance(raw, str) and raw.strip().upper() in {"FULL_SHARD", "SHARD_GRAD_OP"}:
        return raw.strip().upper() == "FULL_SHARD"
    try:
        return v.boolean(raw)
    except v.InvalidValue:
        raise v.InvalidValue("true or false (or FULL_SHARD = true, SHARD_GRAD_OP = false)") from None


SETTINGS: tuple[Setting, ...] = (
    Setting("num_processes", "--num-processes", "num_processes", v.positive_int, 1,
            "Total number of processes over all machines (each machine runs num_processes / num_machines); "
            "default: one per GPU in --gpu-ids, else one, on each machine.", metavar="N"),
    Setting("num_machines", "--num-machines", "num_machines", v.positive_int, 1, "Number of machines (nodes).",
            metavar="M"),
    Setting("machine_rank", "--machine-rank", "machine_rank", v.non_negative_int, 0,
            "Rank of this machine, 0 .. num_machines - 1; machine 0 hosts the rendezvous.", metavar="R"),
    Setting("main_process_ip", "--main-process-ip", "main_process_ip", v.host, None,
            "Address of machine 0 (required with --num-machines > 1).", metavar="IP"),
    Setting("main_process_port", "--main-process-port", "main_process_port", v.port, None,
            "Rendezvous port on machine 0 (default: a free port on one machine, 29500 on several).", metavar="PORT"),
    Setting("rdzv_backend", "--rdzv-backend", "rdzv_backend", v.choice("static", "c10d"), "static",
            "torchrun rendezvous backend for several machines: static (ranks from --machine-rank) or c10d.",
            metavar="static|c10d"),
    Setting("gpu_ids", "--gpu-ids", "gpu_ids", v.gpu_ids, None,
            "GPUs to use, e.g. 0,1 (sets CUDA_VISIBLE_DEVICES); default all.", metavar="IDS"),
    Setting("use_cpu", "--cpu", "use_cpu", v.boolean, False,
            "Run on CPU (gloo) even if CUDA is available.", switch=True),
    Setting("mixed_precision", "--mixed-precision", "mixed_precision", v.mixed_precision, "no",
            "Mixed precision: no, fp16 or bf16.", metavar="no|fp16|bf16"),
    Setting("gradient_accumulation_steps", "--gradient-accumulation-steps", "gradient_accumulation_steps",
            v.positive_int, 1, "Number of batches whose gradients are accumulated before each optimizer step.",
            metavar="K"),
    Setting("use_fsdp", "--use-fsdp", None, v.boolean, False,
            "Shard the model with FSDP2 (fully_shard).", switch=True),
    Setting("fsdp_auto_wrap_policy", "--fsdp-auto-wrap-policy", "fsdp_config.fsdp_auto_wrap_policy",
            v.choice("transformer", "size", "none", aliases={
                "TRANSFORMER_BASED_WRAP": "transformer", "SIZE_BASED_WRAP": "size", "NO_WRAP": "none"}),
            None, "Which submodules FSDP shards separately: transformer (by class), size (by parameter count), none.",
            metavar="transformer|size|none"),
    Setting("fsdp_transformer_layer_cls", "--fsdp-transformer-layer-cls",
            "fsdp_config.fsdp_transformer_layer_cls_to_wrap", v.class_names, None,
            "Comma-separated layer class names to shard separately (auto wrap policy transformer).", metavar="CLASSES"),
    Setting("fsdp_min_num_params", "--fsdp-min-num-params", "fsdp_config.fsdp_min_num_params", v.positive_int,
            None, "Minimum parameter count of a separately sharded submodule (auto wrap policy size).", metavar="N"),
    Setting("fsdp_reshard_after_forward", "--fsdp-reshard-after-forward", "fsdp_config.fsdp_reshard_after_forward",
            _reshard, None, "Free gathered parameters after the forward pass (saves memory).", switch=True),
    Setting("fsdp_cpu_offload", "--fsdp-cpu-offload", "fsdp_config.fsdp_offload_params", v.boolean, None,
            "Keep sharded parameters and gradients on CPU.", switch=True),
    Setting("fsdp_activation_checkpointing", "--fsdp-activation-checkpointing",
            "fsdp_config.fsdp_activation_checkpointing", v.boolean, None,
            "Recompute activations of wrapped layers in the backward pass.", switch=True),
    Setting("fsdp_state_dict_type", "--fsdp-state-dict-type", "fsdp_config.fsdp_state_dict_type",
            v.choice("full", "sharded", aliases={"FULL_STATE_DICT": "full", "SHARDED_STATE_DICT": "sharded"}),
            None, "How FSDP checkpoints are saved: full (one file) or sharded (one per process).",
            metavar="full|sharded"),
    Setting("use_deepspeed", "--use-deepspeed", None, v.boolean, False, "Train with DeepSpeed ZeRO.", switch=True),
    Setting("zero_stage", "--zero-stage", "deepspeed_config.zero_stage", v.zero_stage, None, "ZeRO stage 0..3.",
            metavar="0|1|2|3"),
    Setting("offload_optimizer", "--offload-optimizer", "deepspeed_config.offload_optimizer_device",
            v.choice("none", "cpu"), None, "Offload the optimizer state: none or cpu (ZeRO stage >= 1).",
            metavar="none|cpu"),
    Setting("offload_param", "--offload-param", "deepspeed_config.offload_param_device", v.choice("none", "cpu"),
            None, "Offload the parameters: none or cpu (ZeRO stage 3).", metavar="none|cpu"),
    Setting("deepspeed_config_file", "--deepspeed-config-file", "deepspeed_config.deepspeed_config_file",
            v.existing_file, None, "A DeepSpeed JSON config file.", metavar="PATH"),
    Setting("gradient_clipping", "--gradient-clipping", "deepspeed_config.gradient_clipping", v.positive_float,
            None, "Clip the gradient norm to this value (DeepSpeed).", metavar="NORM"),
)

BY_NAME = {setting.name: setting for setting in SETTINGS}
FSDP_DETAILS = tuple(s.name for s in SETTINGS if s.name.startswith("fsdp_"))
DEEPSPEED_DETAILS = ("zero_stage", "offload_optimizer", "offload_param", "deepspeed_config_file", "gradient_clipping")
DEFAULT_SOURCE = "default"


class LaunchSettings:
    """Every setting's value and where it came from (a flag, a config-file key, or the default)."""

    def __init__(self, values: dict[str, object], sources: dict[str, str]):
        self._values = dict(values)
        self._sources = dict(sources)

    def __getattr__(self, name: str):
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def describe(self, name: str) -> str:
        """`name = value (from SOURCE)`, for error messages."""
        return f"{name} = {_show(self._values[name])} (from {self._sources[name]})"


class SettingsError(ValueError):
    """Settings that are fine alone but not together; the message names each one and its source."""


def merge(file_values: dict, file_sources: dict, flag_values: dict) -> LaunchSettings:
    """Defaults, overridden by the config file, overridden by flags (only the flags the user gave)."""
    values = {s.name: s.default for s in SETTINGS}
    sources = dict.fromkeys(values, DEFAULT_SOURCE)
    values.update(file_values)
    sources.update(file_sources)
    for name, value in flag_values.items():
        values[name] = value
        sources[name] = _flag_spelling(name, value)
    # A backend chosen by flag replaces the one chosen in the file (the file's distributed_type names only one).
    for chosen, other in (("use_fsdp", "use_deepspeed"), ("use_deepspeed", "use_fsdp")):
        if flag_values.get(chosen) and other not in flag_values and values[other]:
            values[other], sources[other] = False, sources[chosen]
    if sources["num_processes"] == DEFAULT_SOURCE:
        # Unset: one process per listed GPU (one if none are listed) on every machine.
        values["num_processes"] = values["num_machines"] * len(values["gpu_ids"] or (None,))
    settings = LaunchSettings(values, sources)
    _check(settings, flag_values)
    return settings


def _check(s: LaunchSettings, flag_values: dict) -> None:
    if s.num_processes % s.num_machines:
        raise SettingsError(
            f"{s.describe('num_processes')} is the total over all machines and must be a multiple of "
            f"{s.describe('num_machines')}")
    if s.machine_rank >= s.num_machines:
        raise SettingsError(f"{s.describe('machine_rank')} must be below {s.describe('num_machines')}")
    if s.num_machines > 1 and s.main_process_ip is None:
        raise SettingsError(f"--main-process-ip (main_process_ip) is required with {s.describe('num_machines')}")
    if s.use_cpu and s.gpu_ids is not None:
        raise SettingsError(f"{s.describe('gpu_ids')} cannot be used with {s.describe('use_cpu')}")
    per_machine = s.num_processes // s.num_machines
    if s.gpu_ids is not None and per_machine > len(s.gpu_ids):
        raise SettingsError(
            f"{s.describe('gpu_ids')} lists {len(s.gpu_ids)} GPU(s) but each machine runs {per_machine} processes "
            f"({s.describe('num_processes')})")
    if s.use_fsdp and s.use_deepspeed:
        raise SettingsError(f"choose one of {s.describe('use_fsdp')} and {s.describe('use_deepspeed')}")
    for backend, details in (("use_fsdp", FSDP_DETAILS), ("use_deepspeed", DEEPSPEED_DETAILS)):
        given = [BY_NAME[name].flag for name in details if name in flag_values]
        if given and not getattr(s, backend):
            raise SettingsError(f"{', '.join(given)} needs {BY_NAME[backend].flag} (or it in the config file)")
    if s.use_fsdp:
        _check_fsdp_wrap(s)
    if s.use_deepspeed:
        _check_offload(s)


def _check_fsdp_wrap(s: LaunchSettings) -> None:
    policy = s.fsdp_auto_wrap_policy
    if s.fsdp_transformer_layer_cls is not None and policy not in (None, "transformer"):
        raise SettingsError(f"{s.describe('fsdp_transformer_layer_cls')} needs auto wrap policy transformer, "
                            f"not {s.describe('fsdp_auto_wrap_policy')}")
    if s.fsdp_min_num_params is not None and policy not in (None, "size"):
        raise SettingsError(f"{s.describe('fsdp_min_num_params')} needs auto wrap policy size, "
                            f"not {s.describe('fsdp_auto_wrap_policy')}")
    if policy == "transformer" and s.fsdp_transformer_layer_cls is None:
        raise SettingsError(f"{s.describe('fsdp_auto_wrap_policy')} needs the layer classes to wrap: "
                            "--fsdp-transformer-layer-cls (fsdp_config.fsdp_transformer_layer_cls_to_wrap)")


def _check_offload(s: LaunchSettings) -> None:
    if s.zero_stage is None:
        return  # the stage comes from the DeepSpeed config file or the runtime's default
    if s.offload_param == "cpu" and s.zero_stage != 3:
        raise SettingsError(f"{s.describe('offload_param')} needs ZeRO stage 3, not {s.describe('zero_stage')}")
    if s.offload_optimizer == "cpu" and s.zero_stage == 0:
        raise SettingsError(f"{s.describe('offload_optimizer')} needs ZeRO stage 1, 2 or 3, "
                            f"not {s.describe('zero_stage')}")


def _flag_spelling(name: str, value) -> str:
    setting = BY_NAME[name]
    if setting.switch and value is False:
        return "--no-" + setting.flag[2:]
    return setting.flag


def _show(value) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
