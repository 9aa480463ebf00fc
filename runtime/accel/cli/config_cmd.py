"""`accel config`: write the config file from questions, from flags, or from defaults; `accel config show`."""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from .config_file import default_config_path, read_config, to_yaml_dict, write_config
from .options import SettingType, given, setting_options, underscores_as_dashes
from .settings import BY_NAME, SettingsError, merge

_CONFIG_FILE = click.option(
    "--config-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Config file (default: $ACCEL_CONFIG_FILE or ~/.cache/accel/default_config.yaml).")


@click.group(invoke_without_command=True, context_settings={"token_normalize_func": underscores_as_dashes},
             short_help="Write the config file that `accel launch` reads.")
@setting_options
@_CONFIG_FILE
@click.option("--default", "use_defaults", is_flag=True,
              help="Write the defaults (one process per CUDA device, or one on CPU) without asking.")
@click.pass_context
def config(ctx, config_file, use_defaults, **params):
    """Write the config file: with flags (or --default), without asking; with neither, by asking questions.

    Flags given here are written as they are; every other setting gets its default.
    """
    if ctx.invoked_subcommand is not None:
        return
    flag_values = given(params)
    if use_defaults and "num_processes" not in flag_values and not flag_values.get("use_cpu"):
        flag_values["num_processes"] = _cuda_device_count() or 1
    if not flag_values and not use_defaults:
        flag_values = _ask()
    try:
        settings = merge({}, {}, flag_values)
    except SettingsError as error:
        raise click.UsageError(str(error)) from None
    path = config_file or default_config_path()
    write_config(path, settings)
    click.echo(f"accel config written to {path}")


@config.command("show")
@_CONFIG_FILE
def show(config_file):
    """Print the effective settings: the config file's, with defaults for what it leaves out."""
    path = config_file or default_config_path()
    file_values, file_sources = read_config(path) if path.is_file() else ({}, {})
    try:
        settings = merge(file_values, file_sources, {})
    except SettingsError as error:
        raise click.UsageError(f"{path}: {error}") from None
    click.echo(f"# {path}" if path.is_file() else f"# no config file at {path}: defaults")
    click.echo(yaml.safe_dump(to_yaml_dict(settings), sort_keys=False), nl=False)


def _ask() -> dict:
    """Ask for each setting that matters given the earlier answers; return them by setting name."""
    answers: dict = {}
    answers["num_machines"] = _prompt("num_machines", "How many machines (nodes)?")
    if answers["num_machines"] > 1:
        answers["machine_rank"] = _prompt("machine_rank", "Rank of this machine?")
        answers["main_process_ip"] = _prompt("main_process_ip", "IP address of machine 0?", default=None)
        answers["main_process_port"] = _prompt("main_process_port", "Rendezvous port on machine 0?", default=29500)
        answers["rdzv_backend"] = _prompt("rdzv_backend", "Rendezvous backend (static, c10d)?")
    answers["use_cpu"] = click.confirm("Run on CPU only, even where CUDA is available?", default=False)
    if not answers["use_cpu"]:
        answers["gpu_ids"] = _prompt("gpu_ids", "Which GPUs (e.g. 0,1)?", default="all")
    answers["num_processes"] = _prompt("num_processes", "How many processes in total (over all machines)?")
    answers["mixed_precision"] = _prompt("mixed_precision", "Mixed precision (no, fp16, bf16)?")
    answers["gradient_accumulation_steps"] = _prompt("gradient_accumulation_steps", "Gradient accumulation steps?")
    backend = click.prompt("Distribute the model with (ddp, fsdp, deepspeed)?", default="ddp",
                           type=click.Choice(["ddp", "fsdp", "deepspeed"], case_sensitive=False))
    if backend == "fsdp":
        answers["use_fsdp"] = True
        answers.update(_ask_fsdp())
    elif backend == "deepspeed":
        answers["use_deepspeed"] = True
        answers.update(_ask_deepspeed())
    return {name: value for name, value in answers.items() if value is not None}


def _ask_fsdp() -> dict:
    answers = {"fsdp_auto_wrap_policy": _prompt(
        "fsdp_auto_wrap_policy", "Which submodules to shard separately (transformer, size, none)?", default="none")}
    if answers["fsdp_auto_wrap_policy"] == "transformer":
        answers["fsdp_transformer_layer_cls"] = _prompt(
            "fsdp_transformer_layer_cls", "Layer class names to shard separately (e.g. Block,DecoderLayer)?", None)
    elif answers["fsdp_auto_wrap_policy"] == "size":
        answers["fsdp_min_num_params"] = _prompt(
            "fsdp_min_num_params", "Minimum parameters of a separately sharded submodule?", default=100_000_000)
    answers["fsdp_reshard_after_forward"] = click.confirm("Free gathered parameters after forward?", default=True)
    answers["fsdp_cpu_offload"] = click.confirm("Offload parameters and gradients to CPU?", default=False)
    answers["fsdp_activation_checkpointing"] = click.confirm("Checkpoint activations?", default=False)
    answers["fsdp_state_dict_type"] = _prompt(
        "fsdp_state_dict_type", "Checkpoint format (full, sharded)?", default="full")
    return answers


def _ask_deepspeed() -> dict:
    if click.confirm("Use a DeepSpeed JSON config file?", default=False):
        return {"deepspeed_config_file": _prompt("deepspeed_config_file", "Path of the DeepSpeed config file?", None)}
    answers = {"zero_stage": _prompt("zero_stage", "ZeRO stage (0, 1, 2, 3)?", default=2)}
    if answers["zero_stage"] >= 1:
        answers["offload_optimizer"] = _prompt("offload_optimizer", "Offload optimizer state (none, cpu)?", "none")
    if answers["zero_stage"] == 3:
        answers["offload_param"] = _prompt("offload_param", "Offload parameters (none, cpu)?", default="none")
    if click.confirm("Clip gradients?", default=False):
        answers["gradient_clipping"] = _prompt("gradient_clipping", "Maximum gradient norm?", default=1.0)
    return answers


_UNSET = object()


def _prompt(name: str, question: str, default=_UNSET):
    """Ask one question; the answer goes through the setting's parser (asked again when not allowed)."""
    setting = BY_NAME[name]
    default = setting.default if default is _UNSET else default
    return click.prompt(question, default=default, type=SettingType(setting))


def _cuda_device_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0
