"""Settings of the sharding backends: ``FullyShardedDataParallelPlugin`` (FSDP2) and ``DeepSpeedPlugin`` (ZeRO).

Pass one to ``Accelerator(fsdp_plugin=...)`` / ``Accelerator(deepspeed_plugin=...)``, or let ``accel launch
--use-fsdp`` / ``--use-deepspeed`` set the ACCEL_FSDP_* / ACCEL_*DEEPSPEED* / ACCEL_ZERO_STAGE variables that
``from_env`` reads. A field set in the script wins over the environment.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from .utils import env_bool, env_choice, env_int

AUTO_WRAP_POLICIES = ("transformer", "size", "none")
STATE_DICT_TYPES = ("full", "sharded")
OFFLOAD_DEVICES = ("none", "cpu")


def _env_float(name: str) -> float | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not a number") from None
    if value <= 0:
        raise ValueError(f"environment variable {name}={raw!r} must be a number > 0")
    return value


def _check_choice(owner: str, field: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{owner}.{field}={value!r} is not allowed; allowed: {', '.join(allowed)}")


@dataclasses.dataclass
class FullyShardedDataParallelPlugin:
    """How FSDP2 (``torch.distributed.fsdp.fully_shard``) shards a model.

    ``auto_wrap_policy`` picks the submodules sharded as units of their own (each gathered only while it runs):
    ``transformer`` those whose class name is in ``transformer_layer_cls``, ``size`` every submodule holding at
    least ``min_num_params`` parameters not already in a smaller unit, ``none`` only the whole model. The root
    module is always sharded last. ``param_dtype`` / ``reduce_dtype`` default to the Accelerator's precision
    (bf16/fp16 compute, fp32 gradient reduction).
    """

    auto_wrap_policy: str | None = None
    transformer_layer_cls: tuple[str, ...] = ()
    min_num_params: int = 100_000_000
    reshard_after_forward: bool = True
    cpu_offload: bool = False
    activation_checkpointing: bool = False
    state_dict_type: str = "full"
    param_dtype: Any = None
    reduce_dtype: Any = None

    def __post_init__(self):
        if isinstance(self.transformer_layer_cls, str):
            self.transformer_layer_cls = tuple(n.strip() for n in self.transformer_layer_cls.split(",") if n.strip())
        self.transformer_layer_cls = tuple(self.transformer_layer_cls)
        if self.auto_wrap_policy is None:
            self.auto_wrap_policy = "transformer" if self.transformer_layer_cls else "none"
        owner = type(self).__name__
        _check_choice(owner, "auto_wrap_policy", self.auto_wrap_policy, AUTO_WRAP_POLICIES)
        _check_choice(owner, "state_dict_type", self.state_dict_type, STATE_DICT_TYPES)
        if self.auto_wrap_policy == "transformer" and not self.transformer_layer_cls:
            raise ValueError(f"{owner}: auto_wrap_policy='transformer' needs transformer_layer_cls "
                             "(layer class names, e.g. ('Block',))")
        if isinstance(self.min_num_params, bool) or not isinstance(self.min_num_params, int) \
                or self.min_num_params < 1:
            raise ValueError(f"{owner}.min_num_params={self.min_num_params!r} must be a positive integer")

    @classmethod
    def from_env(cls) -> FullyShardedDataParallelPlugin:
        """The plugin ``accel launch --use-fsdp`` describes through the ACCEL_FSDP_* variables."""
        layers = os.environ.get("ACCEL_FSDP_TRANSFORMER_LAYER_CLS", "")
        policy = env_choice("ACCEL_FSDP_AUTO_WRAP_POLICY", AUTO_WRAP_POLICIES, "")
        min_params = env_int("ACCEL_FSDP_MIN_NUM_PARAMS", cls.min_num_params)
        if min_params < 1:
            raise ValueError(f"environment variable ACCEL_FSDP_MIN_NUM_PARAMS={min_params} must be >= 1")
        if policy == "transformer" and not layers.strip():
            raise ValueError("ACCEL_FSDP_AUTO_WRAP_POLICY=transformer needs ACCEL_FSDP_TRANSFORMER_LAYER_CLS "
                             "(e.g. --fsdp-transformer-layer-cls Block)")
        return cls(
            auto_wrap_policy=policy or None,
            transformer_layer_cls=layers,
            min_num_params=min_params,
            reshard_after_forward=env_bool("ACCEL_FSDP_RESHARD_AFTER_FORWARD", True),
            cpu_offload=env_bool("ACCEL_FSDP_CPU_OFFLOAD", False),
            activation_checkpointing=env_bool("ACCEL_FSDP_ACTIVATION_CHECKPOINTING", False),
            state_dict_type=env_choice("ACCEL_FSDP_STATE_DICT_TYPE", STATE_DICT_TYPES, "full"),
        )


@dataclasses.dataclass
class DeepSpeedPlugin:
    """How DeepSpeed trains the model: a DeepSpeed config plus the few settings ``accel launch`` exposes.

    ``hf_ds_config`` is a config dict or the path of a JSON file (the name follows Hugging Face Accelerate).
    ``zero_stage``, ``offload_optimizer_device``, ``offload_param_device`` and ``gradient_clipping`` fill the
    config where it is silent; where it says something else, building the config fails naming both values.
    """

    hf_ds_config: dict | str | os.PathLike | None = None
    zero_stage: int | None = None
    offload_optimizer_device: str | None = None
    offload_param_device: str | None = None
    gradient_clipping: float | None = None

    def __post_init__(self):
        owner = type(self).__name__
        if self.zero_stage is not None and self.zero_stage not in (0, 1, 2, 3):
            raise ValueError(f"{owner}.zero_stage={self.zero_stage!r} is not allowed; allowed: 0, 1, 2, 3")
        for field in ("offload_optimizer_device", "offload_param_device"):
            value = getattr(self, field)
            if value is not None:
                _check_choice(owner, field, value, OFFLOAD_DEVICES)
        if self.gradient_clipping is not None and not self.gradient_clipping > 0:
            raise ValueError(f"{owner}.gradient_clipping={self.gradient_clipping!r} must be a number > 0")
        if self.hf_ds_config is not None and not isinstance(self.hf_ds_config, (dict, str, os.PathLike)):
            raise TypeError(f"{owner}.hf_ds_config must be a dict or the path of a JSON file; "
                            f"got {type(self.hf_ds_config).__name__}")

    @classmethod
    def from_env(cls) -> DeepSpeedPlugin:
        """The plugin ``accel launch --use-deepspeed`` describes through its environment variables."""
        stage = os.environ.get("ACCEL_ZERO_STAGE", "").strip()
        if stage and stage not in ("0", "1", "2", "3"):
            raise ValueError(f"environment variable ACCEL_ZERO_STAGE={stage!r} is not allowed; allowed: 0, 1, 2, 3")
        offload_opt = env_choice("ACCEL_OFFLOAD_OPTIMIZER_DEVICE", OFFLOAD_DEVICES, "")
        offload_param = env_choice("ACCEL_OFFLOAD_PARAM_DEVICE", OFFLOAD_DEVICES, "")
        return cls(
            hf_ds_config=os.environ.get("ACCEL_DEEPSPEED_CONFIG_FILE", "").strip() or None,
            zero_stage=int(stage) if stage else None,
            offload_optimizer_device=offload_opt or None,
            offload_param_device=offload_param or None,
            gradient_clipping=_env_float("ACCEL_GRADIENT_CLIPPING"),
        )

    def load_config(self) -> tuple[dict, str]:
        """The user's DeepSpeed config (a copy) and a description of where it came from, for messages."""
        if self.hf_ds_config is None:
            return {}, "the default DeepSpeed config"
        if isinstance(self.hf_ds_config, dict):
            return json.loads(json.dumps(self.hf_ds_config)), "the DeepSpeed config dict"
        path = os.fspath(self.hf_ds_config)
        try:
            with open(path, encoding="utf-8") as handle:
                config = json.load(handle)
        except FileNotFoundError:
            raise FileNotFoundError(f"DeepSpeed config file {path} does not exist") from None
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{err.lineno}:{err.colno}: DeepSpeed config is not valid JSON: {err.msg}") \
                from None
        if not isinstance(config, dict):
            raise TypeError(f"{path}: a DeepSpeed config must be a JSON object, got {type(config).__name__}")
        return config, f"DeepSpeed config file {path}"
