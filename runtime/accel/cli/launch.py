"""`accel launch`: check the settings, then hand the script to torchrun running in this process."""

from __future__ import annotations

import os
import shlex
import signal
import sys
from pathlib import Path

import click

from .config_file import ConfigFileError, default_config_path, read_config
from .options import given, setting_options, underscores_as_dashes
from .settings import SettingsError, merge
from .torchrun_args import torchrun_argv
from .worker_env import CONTRACT_VARIABLES, usable_cpu_count, worker_environment


@click.command(
    context_settings={"allow_interspersed_args": False, "token_normalize_func": underscores_as_dashes},
    short_help="Run a training script on several processes (through torchrun).",
)
@setting_options
@click.option("--config-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Config file to read (default: $ACCEL_CONFIG_FILE, else ~/.cache/accel/default_config.yaml, "
                   "when present).")
@click.option("-m", "--module", is_flag=True, help="SCRIPT is a module name, run like `python -m`.")
@click.option("--dry-run", is_flag=True, help="Print the torchrun command and the ACCEL_* variables; start nothing.")
@click.argument("script")
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
def launch(config_file, module, dry_run, script, script_args, **params):
    """Run SCRIPT with SCRIPT_ARGS on every process. Everything after SCRIPT goes to the script unchanged.

    Settings come from the flags, else the config file, else the defaults. Exit status: 0 when every process
    succeeded, 2 for a usage error, the exit code of the first worker that failed, 128 + N after signal N
    (130 after Ctrl-C).
    """
    settings = _settings(config_file, given(params))
    if not module and not Path(script).is_file():
        raise click.BadParameter(f"{script!r}: no such file", param_hint="SCRIPT")
    argv = torchrun_argv(settings, script, list(script_args), module)
    env = worker_environment(settings, dict(os.environ), usable_cpu_count())
    if dry_run:
        _print_plan(argv, env)
        return
    os.environ.clear()
    os.environ.update(env)
    sys.exit(_run_torchrun(argv))


def _settings(config_file: Path | None, flag_values: dict):
    path = config_file or default_config_path()
    if config_file is not None and not config_file.is_file():
        raise ConfigFileError(f"config file {config_file} does not exist")
    file_values, file_sources = read_config(path) if path.is_file() else ({}, {})
    try:
        return merge(file_values, file_sources, flag_values)
    except SettingsError as error:
        raise click.UsageError(str(error)) from None


def _print_plan(argv: list[str], env: dict[str, str]) -> None:
    click.echo(shlex.join([sys.executable, "-m", "torch.distributed.run", *argv]))
    for name in (*CONTRACT_VARIABLES, "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS"):
        if name in env:
            click.echo(f"{name}={env[name]}")


def _run_torchrun(argv: list[str]) -> int:
    """Run torchrun's elastic agent here; return the launch's exit status."""
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    try:
        torchrun.run(torchrun.parse_args(argv))
    except ChildFailedError as error:
        rank, failure = error.get_first_failure()
        code = failure.exitcode if failure.exitcode > 0 else 128 - failure.exitcode
        reason = f"signal {failure.signal_name()}" if failure.exitcode < 0 else f"exit code {failure.exitcode}"
        click.echo(f"accel launch: process {rank} (pid {failure.pid}) failed with {reason}; "
                   "every process was stopped", err=True)
        return code
    except KeyboardInterrupt:  # Ctrl-C before torchrun installed its signal handlers: nothing started yet
        return 128 + signal.SIGINT
    except SignalException as error:
        click.echo(f"accel launch: stopped by {signal.Signals(error.sigval).name}; every process was stopped",
                   err=True)
        return 128 + int(error.sigval)
    return 0
