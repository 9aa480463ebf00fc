"""FSDP / DeepSpeed settings without starting processes: environment parsing, the DeepSpeed config built from
what the Accelerator knows (and its conflict messages), FSDP's choice of sharded units, the install hint."""

import json
import sys

import pytest
from torch import nn

from accel.backends.deepspeed_config import build_config
from accel.plugins import DeepSpeedPlugin, FullyShardedDataParallelPlugin


def test_fsdp_plugin_from_launcher_environment(monkeypatch):
    monkeypatch.setenv("ACCEL_FSDP_AUTO_WRAP_POLICY", "transformer")
    monkeypatch.setenv("ACCEL_FSDP_TRANSFORMER_LAYER_CLS", "Block, DecoderLayer")
    monkeypatch.setenv("ACCEL_FSDP_RESHARD_AFTER_FORWARD", "no")
    monkeypatch.setenv("ACCEL_FSDP_CPU_OFFLOAD", "TRUE")
    monkeypatch.setenv("ACCEL_FSDP_STATE_DICT_TYPE", "sharded")
    plugin = FullyShardedDataParallelPlugin.from_env()
    assert plugin.transformer_layer_cls == ("Block", "DecoderLayer")
    assert (plugin.reshard_after_forward, plugin.cpu_offload, plugin.state_dict_type) == (False, True, "sharded")
    assert plugin.activation_checkpointing is False


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("ACCEL_FSDP_CPU_OFFLOAD", "maybe", "ACCEL_FSDP_CPU_OFFLOAD='maybe' is not a boolean"),
    ("ACCEL_FSDP_AUTO_WRAP_POLICY", "blocks", "ACCEL_FSDP_AUTO_WRAP_POLICY='blocks' is not allowed"),
    ("ACCEL_FSDP_AUTO_WRAP_POLICY", "transformer", "needs ACCEL_FSDP_TRANSFORMER_LAYER_CLS"),
    ("ACCEL_ZERO_STAGE", "4", "ACCEL_ZERO_STAGE='4' is not allowed; allowed: 0, 1, 2, 3"),
    ("ACCEL_GRADIENT_CLIPPING", "-1", "ACCEL_GRADIENT_CLIPPING='-1' must be a number > 0"),
])
def test_bad_environment_names_variable_and_value(monkeypatch, name, value, expected):
    monkeypatch.setenv(name, value)
    plugin_class = DeepSpeedPlugin if name in ("ACCEL_ZERO_STAGE", "ACCEL_GRADIENT_CLIPPING") \
        else FullyShardedDataParallelPlugin
    with pytest.raises(ValueError, match=expected):
        plugin_class.from_env()


def _build(plugin, mixed_precision="no", steps=2, batch=4, world=2):
    return build_config(plugin, mixed_precision=mixed_precision, gradient_accumulation_steps=steps,
                        micro_batch_size=batch, world_size=world)


def test_deepspeed_config_filled_from_accelerator_and_launcher():
    config = _build(DeepSpeedPlugin(zero_stage=3, offload_param_device="cpu", gradient_clipping=1.0),
                    mixed_precision="bf16")
    assert config["train_micro_batch_size_per_gpu"] == 4
    assert config["gradient_accumulation_steps"] == 2
    assert config["gradient_clipping"] == 1.0
    assert config["bf16"] == {"enabled": True} and config["fp16"] == {"enabled": False}
    assert config["zero_optimization"] == {"stage": 3, "offload_param": {"device": "cpu"}}
    assert "zero_force_ds_cpu_optimizer" not in config
    assert config["zero_allow_untested_optimizer"] is True  # any torch optimizer of the script
    offloaded = _build(DeepSpeedPlugin(zero_stage=2, offload_optimizer_device="cpu"))
    assert offloaded["zero_optimization"]["offload_optimizer"] == {"device": "cpu"}
    assert offloaded["zero_force_ds_cpu_optimizer"] is False  # the script's torch optimizer may run offloaded


def test_deepspeed_config_file_with_auto_values_is_completed(tmp_path):
    path = tmp_path / "ds.json"
    path.write_text(json.dumps({"train_batch_size": 16, "train_micro_batch_size_per_gpu": "auto",
                                "zero_optimization": {"stage": 1}}))
    config = _build(DeepSpeedPlugin(hf_ds_config=str(path)))
    assert (config["train_batch_size"], config["train_micro_batch_size_per_gpu"]) == (16, 4)
    assert config["zero_optimization"]["stage"] == 1


@pytest.mark.parametrize(("config", "plugin_args", "kwargs", "expected"), [
    ({"gradient_accumulation_steps": 4}, {}, {},
     "sets gradient_accumulation_steps=4 but the Accelerator's gradient_accumulation_steps is 2"),
    ({"train_micro_batch_size_per_gpu": 8}, {}, {},
     "sets train_micro_batch_size_per_gpu=8 but the prepared DataLoader's batch size is 4"),
    ({"zero_optimization": {"stage": 2}}, {"zero_stage": 3}, {},
     r"sets zero_optimization.stage=2 but zero_stage \(--zero-stage\) is 3"),
    ({"gradient_clipping": 0.5}, {"gradient_clipping": 1.0}, {},
     r"sets gradient_clipping=0.5 but gradient_clipping \(--gradient-clipping\) is 1.0"),
    ({"fp16": {"enabled": True}}, {}, {"mixed_precision": "bf16"},
     "sets fp16.enabled=True but the Accelerator's mixed_precision is 'bf16'"),
    ({"train_batch_size": 10}, {}, {},
     (r"sets train_batch_size=10 but train_micro_batch_size_per_gpu \(4\) x gradient_accumulation_steps \(2\) "
      r"x processes \(2\) is 16")),
    ({"zero_optimization": {"stage": 2, "offload_param": {"device": "cpu"}}}, {}, {},
     "offload_param.device='cpu' needs ZeRO stage >= 3"),
])
def test_deepspeed_config_conflicts_name_both_values(tmp_path, config, plugin_args, kwargs, expected):
    path = tmp_path / "ds.json"
    path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=expected) as info:
        _build(DeepSpeedPlugin(hf_ds_config=str(path), **plugin_args), **kwargs)
    assert str(path) in str(info.value)


def test_deepspeed_config_file_errors_name_the_file(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"zero_optimization": {"stage": 2,}}')
    with pytest.raises(ValueError, match=rf"{broken}:1:\d+: DeepSpeed config is not valid JSON"):
        _build(DeepSpeedPlugin(hf_ds_config=str(broken)))
    with pytest.raises(FileNotFoundError, match="missing.json does not exist"):
        _build(DeepSpeedPlugin(hf_ds_config=str(tmp_path / "missing.json")))


def test_missing_deepspeed_says_how_to_install(monkeypatch):
    from accel.backends.deepspeed import import_deepspeed

    monkeypatch.setitem(sys.modules, "deepspeed", None)
    with pytest.raises(ImportError, match=r"pip install 'accel-convert\[deepspeed\]'"):
        import_deepspeed("cuda")


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(10, 10)  # 110 parameters


def _model():
    return nn.Sequential(nn.Linear(10, 10), nn.Sequential(Block(), Block()), nn.Linear(10, 1))


def test_fsdp_units_by_class_name_and_by_size():
    from accel.backends.fsdp import units_to_shard

    model = _model()
    blocks = [model[1][1], model[1][0]]  # innermost / last first
    assert units_to_shard(model, FullyShardedDataParallelPlugin(transformer_layer_cls="Block")) == blocks
    by_size = units_to_shard(model, FullyShardedDataParallelPlugin(auto_wrap_policy="size", min_num_params=200))
    assert by_size == [model[1]]  # the two blocks together reach 200; each alone does not
    assert units_to_shard(model, FullyShardedDataParallelPlugin()) == []
    with pytest.raises(ValueError, match="transformer_layer_cls names Layer, but the model .* has no submodule"):
        units_to_shard(model, FullyShardedDataParallelPlugin(transformer_layer_cls=("Block", "Layer")))
