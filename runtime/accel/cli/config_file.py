"""The YAML config file: where it lives, reading it into settings (every key and value checked), writing it.

Keys follow Hugging Face Accelerate's `default_config.yaml`, so a file written by `accelerate config` works here
and a file written here works with `accelerate launch`.
"""

from __future__ import annotations

import difflib
import os
import tempfile
from pathlib import Path

import click
import yaml

from . import values as v
from .settings import BY_NAME, SETTINGS, LaunchSettings

SECTIONS = ("fsdp_config", "deepspeed_config")
DISTRIBUTED_TYPES = ("NO", "MULTI_CPU", "MULTI_GPU", "FSDP", "DEEPSPEED")

# Accelerate keys that accel reads but that change nothing here (other tools, or features accel does not have).
_NO_EFFECT = {
    None: {"compute_environment", "debug", "downcast_bf16", "enable_cpu_affinity", "main_training_function",
           "same_network", "tpu_env", "tpu_use_cluster", "tpu_use_sudo", "tpu_name", "tpu_zone", "tpu_vm",
           "command_file", "commands", "dynamo_config", "fp8_config", "megatron_lm_config", "parallelism_config",
           "mpirun_config", "ipex_config"},
    "fsdp_config": {"fsdp_version", "fsdp_backward_prefetch", "fsdp_forward_prefetch", "fsdp_use_orig_params",
                    "fsdp_cpu_ram_efficient_loading", "fsdp_sync_module_states"},
    "deepspeed_config": {"zero3_init_flag", "zero3_save_16bit_model", "deepspeed_multinode_launcher",
                         "offload_optimizer_nvme_path", "offload_param_nvme_path", "deepspeed_hostfile",
                         "deepspeed_exclusion_filter", "deepspeed_inclusion_filter", "deepspeed_moe_layer_cls_names"},
}
# Of those, sections describing features accel lacks: a non-empty one gets a warning.
_UNSUPPORTED_FEATURES = {"dynamo_config", "fp8_config", "megatron_lm_config", "parallelism_config", "mpirun_config",
                         "ipex_config"}
# Other spellings of a setting's key.
_ALIASES = {
    "fsdp_config.fsdp_sharding_strategy": "fsdp_reshard_after_forward",
    "deepspeed_config.gradient_accumulation_steps": "gradient_accumulation_steps",
}


class ConfigFileError(click.ClickException):
    """A config file that cannot be used; exits 2 like any usage error."""

    exit_code = 2


def default_config_path() -> Path:
    """`$ACCEL_CONFIG_FILE`, else `~/.cache/accel/default_config.yaml`."""
    override = os.environ.get("ACCEL_CONFIG_FILE")
    if override:
        return Path(override).expanduser()
    return Path.home() / ".cache" / "accel" / "default_config.yaml"


def load_raw(path: Path) -> dict:
    """The file's YAML mapping (empty for an empty file); errors name the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigFileError(f"cannot read config file {path}: {error.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigFileError(f"{where}: not valid YAML ({getattr(error, 'problem', error)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigFileError(f"{path}: expected a mapping of keys to values, found {type(data).__name__}")
    return data


def read_config(path: Path) -> tuple[dict, dict]:
    """Settings from the file: (values by setting name, source text by setting name)."""
    raw = load_raw(path)
    by_key = {s.key: s for s in SETTINGS if s.key}
    found: dict[str, tuple[object, str]] = {}

    def take(key: str, value) -> None:
        setting = by_key.get(key) or BY_NAME[_ALIASES[key]]
        try:
            parsed = setting.parse(value)
        except v.InvalidValue as error:
            raise ConfigFileError(f"{path}: {key}: {value!r} is not allowed; expected {error}") from None
        if setting.name in found and found[setting.name][0] != parsed:
            other = found[setting.name][1].split(" in ")[0]
            raise ConfigFileError(f"{path}: {key} = {value!r} contradicts {other}")
        found[setting.name] = (parsed, f"{key} in {path}")

    top_known = {k for k in by_key if "." not in k} | set(SECTIONS) | {"distributed_type"} | _NO_EFFECT[None]
    for key, value in raw.items():
        _check_known(path, str(key), top_known)
        if key in SECTIONS:
            _read_section(path, key, value, by_key, take)
        elif key == "distributed_type":
            _read_distributed_type(path, value, found)
        elif key == "compute_environment" and value not in (None, "LOCAL_MACHINE"):
            raise ConfigFileError(f"{path}: compute_environment: {value!r} is not allowed; expected LOCAL_MACHINE")
        elif key in _UNSUPPORTED_FEATURES and value:
            click.echo(f"accel: warning: {path}: {key} is not supported by accel and is ignored", err=True)
        elif key not in _NO_EFFECT[None]:
            take(key, value)
    values = {name: value for name, (value, _) in found.items()}
    sources = {name: source for name, (_, source) in found.items()}
    return values, sources


def _read_section(path, section, content, by_key, take) -> None:
    if content is None:
        return
    if not isinstance(content, dict):
        raise ConfigFileError(f"{path}: {section}: expected a mapping of keys to values, found {content!r}")
    known = {k.split(".", 1)[1] for k in [*by_key, *_ALIASES] if k.startswith(section + ".")} | _NO_EFFECT[section]
    for key, value in content.items():
        _check_known(path, f"{section}.{key}", {f"{section}.{k}" for k in known})
        if key == "fsdp_version" and value not in (1, 2):
            raise ConfigFileError(f"{path}: {section}.fsdp_version: {value!r} is not allowed; expected 1 or 2")
        if key not in _NO_EFFECT[section]:
            take(f"{section}.{key}", value)


def _read_distributed_type(path, value, found) -> None:
    kind = str(value).upper() if isinstance(value, str) else None
    if kind not in DISTRIBUTED_TYPES:
        raise ConfigFileError(f"{path}: distributed_type: {value!r} is not allowed; "
                              f"expected one of {', '.join(DISTRIBUTED_TYPES)}")
    source = f"distributed_type in {path}"
    found["use_fsdp"] = (kind == "FSDP", source)
    found["use_deepspeed"] = (kind == "DEEPSPEED", source)


def _check_known(path, key: str, known: set[str]) -> None:
    if key in known:
        return
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else f"; known keys: {', '.join(sorted(known))}"
    raise ConfigFileError(f"{path}: unknown key {key}{hint}")


def to_yaml_dict(s: LaunchSettings) -> dict:
    """The settings in Accelerate's layout (values spelled as Accelerate spells them)."""
    data = {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": _distributed_type(s),
        "mixed_precision": s.mixed_precision,
        "use_cpu": s.use_cpu,
        "num_processes": s.num_processes,
        "num_machines": s.num_machines,
        "machine_rank": s.machine_rank,
        "gpu_ids": "all" if s.gpu_ids is None else ",".join(map(str, s.gpu_ids)),
        "rdzv_backend": s.rdzv_backend,
    }
    if s.main_process_ip is not None:
        data["main_process_ip"] = s.main_process_ip
    if s.main_process_port is not None:
        data["main_process_port"] = s.main_process_port
    if s.gradient_accumulation_steps != 1:
        data["gradient_accumulation_steps"] = s.gradient_accumulation_steps
    if s.use_fsdp:
        data["fsdp_config"] = {"fsdp_version": 2, **_section(s, "fsdp_config")}
    if s.use_deepspeed:
        data["deepspeed_config"] = {"gradient_accumulation_steps": s.gradient_accumulation_steps,
                                    **_section(s, "deepspeed_config")}
    return data


_ACCELERATE_SPELLING = {
    "fsdp_auto_wrap_policy": {"transformer": "TRANSFORMER_BASED_WRAP", "size": "SIZE_BASED_WRAP", "none": "NO_WRAP"},
    "fsdp_state_dict_type": {"full": "FULL_STATE_DICT", "sharded": "SHARDED_STATE_DICT"},
}


def _section(s: LaunchSettings, section: str) -> dict:
    out = {}
    for setting in SETTINGS:
        value = getattr(s, setting.name)
        if not (setting.key or "").startswith(section + ".") or value is None:
            continue
        if isinstance(value, tuple):
            value = ",".join(value)
        out[setting.key.split(".", 1)[1]] = _ACCELERATE_SPELLING.get(setting.name, {}).get(value, value)
    return out


def _distributed_type(s: LaunchSettings) -> str:
    if s.use_fsdp:
        return "FSDP"
    if s.use_deepspeed:
        return "DEEPSPEED"
    if s.num_processes > 1:
        return "MULTI_CPU" if s.use_cpu else "MULTI_GPU"
    return "NO"


def write_config(path: Path, s: LaunchSettings) -> None:
    """Write atomically (a temporary file renamed over the target)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(to_yaml_dict(s), sort_keys=False)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, delete=False, suffix=".tmp") as tmp:
        tmp.write(text)
    os.replace(tmp.name, path)
