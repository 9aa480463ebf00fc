"""The environment variables `accel launch` gives every worker (the launcher -> runtime contract)."""

from __future__ import annotations

import os

from .settings import LaunchSettings

# Every variable of the contract: the launcher owns them, so inherited values never leak into a launch.
CONTRACT_VARIABLES = (
    "ACCEL_MIXED_PRECISION", "ACCEL_USE_CPU", "ACCEL_GRADIENT_ACCUMULATION_STEPS",
    "ACCEL_USE_FSDP", "ACCEL_FSDP_AUTO_WRAP_POLICY", "ACCEL_FSDP_TRANSFORMER_LAYER_CLS", "ACCEL_FSDP_MIN_NUM_PARAMS",
    "ACCEL_FSDP_RESHARD_AFTER_FORWARD", "ACCEL_FSDP_CPU_OFFLOAD", "ACCEL_FSDP_ACTIVATION_CHECKPOINTING",
    "ACCEL_FSDP_STATE_DICT_TYPE",
    "ACCEL_USE_DEEPSPEED", "ACCEL_DEEPSPEED_CONFIG_FILE", "ACCEL_ZERO_STAGE", "ACCEL_OFFLOAD_OPTIMIZER_DEVICE",
    "ACCEL_OFFLOAD_PARAM_DEVICE", "ACCEL_GRADIENT_CLIPPING",
)

_FSDP = {
    "fsdp_auto_wrap_policy": "ACCEL_FSDP_AUTO_WRAP_POLICY",
    "fsdp_transformer_layer_cls": "ACCEL_FSDP_TRANSFORMER_LAYER_CLS",
    "fsdp_min_num_params": "ACCEL_FSDP_MIN_NUM_PARAMS",
    "fsdp_reshard_after_forward": "ACCEL_FSDP_RESHARD_AFTER_FORWARD",
    "fsdp_cpu_offload": "ACCEL_FSDP_CPU_OFFLOAD",
    "fsdp_activation_checkpointing": "ACCEL_FSDP_ACTIVATION_CHECKPOINTING",
    "fsdp_state_dict_type": "ACCEL_FSDP_STATE_DICT_TYPE",
}
_DEEPSPEED = {
    "deepspeed_config_file": "ACCEL_DEEPSPEED_CONFIG_FILE",
    "zero_stage": "ACCEL_ZERO_STAGE",
    "offload_optimizer": "ACCEL_OFFLOAD_OPTIMIZER_DEVICE",
    "offload_param": "ACCEL_OFFLOAD_PARAM_DEVICE",
    "gradient_clipping": "ACCEL_GRADIENT_CLIPPING",
}


def worker_environment(s: LaunchSettings, base: dict[str, str], cpu_count: int) -> dict[str, str]:
    """`base` (the launcher's environment) without inherited contract variables, plus this launch's values.

    FSDP and DeepSpeed details that were not set stay unset, so the runtime (or the DeepSpeed config file) decides.
    """
    env = {name: value for name, value in base.items() if name not in CONTRACT_VARIABLES}
    env["ACCEL_MIXED_PRECISION"] = s.mixed_precision
    env["ACCEL_USE_CPU"] = _text(s.use_cpu)
    env["ACCEL_GRADIENT_ACCUMULATION_STEPS"] = str(s.gradient_accumulation_steps)
    env["ACCEL_USE_FSDP"] = _text(s.use_fsdp)
    env["ACCEL_USE_DEEPSPEED"] = _text(s.use_deepspeed)
    if s.use_fsdp:
        env.update(_details(s, _FSDP))
        if s.fsdp_auto_wrap_policy is None and s.fsdp_transformer_layer_cls is not None:
            env["ACCEL_FSDP_AUTO_WRAP_POLICY"] = "transformer"
        elif s.fsdp_auto_wrap_policy is None and s.fsdp_min_num_params is not None:
            env["ACCEL_FSDP_AUTO_WRAP_POLICY"] = "size"
    if s.use_deepspeed:
        env.update(_details(s, _DEEPSPEED))
    if s.gpu_ids is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, s.gpu_ids))
    if "OMP_NUM_THREADS" not in base:
        # The machine's cores shared out between this machine's processes (torchrun would otherwise use 1).
        env["OMP_NUM_THREADS"] = str(max(1, cpu_count // (s.num_processes // s.num_machines)))
    return env


def usable_cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _details(s: LaunchSettings, names: dict[str, str]) -> dict[str, str]:
    return {variable: _text(getattr(s, name)) for name, variable in names.items() if getattr(s, name) is not None}


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)
