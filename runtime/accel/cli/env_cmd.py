"""`accel env`: the versions, devices, config file and ACCEL_* variables to paste into a bug report."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import sys

import click

from .config_file import ConfigFileError, default_config_path, load_raw
from .worker_env import usable_cpu_count


@click.command(short_help="Print versions, devices and configuration for bug reports.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def env(as_json):
    """Print versions (accel, Python, torch, CUDA, cuDNN, NCCL, DeepSpeed, torch_xla), devices, the config file
    and the ACCEL_* environment variables."""
    report = collect()
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for section, content in report.items():
        click.echo(f"{section}:")
        for key, value in content.items():
            if isinstance(value, (dict, list)):
                value = json.dumps(value)
            click.echo(f"- {key}: {value}")
        click.echo("")


def collect() -> dict:
    import torch

    return {"versions": _versions(torch), "devices": _devices(torch), "config": _config(),
            "environment": {name: value for name, value in sorted(os.environ.items())
                            if name.startswith("ACCEL_") or name in ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS")}}


def _versions(torch) -> dict:
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    nccl = None
    if torch.cuda.is_available() and torch.distributed.is_nccl_available():
        nccl = ".".join(map(str, torch.cuda.nccl.version()))
    return {
        "accel": _installed("accel-convert"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": cudnn,
        "nccl": nccl,
        "deepspeed": _installed("deepspeed"),
        "torch_xla": _installed("torch_xla"),
    }


def _devices(torch) -> dict:
    cuda = torch.cuda.is_available()
    return {
        "cuda_available": cuda,
        "cuda_device_count": torch.cuda.device_count() if cuda else 0,
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        "mps_available": torch.backends.mps.is_available(),
        "cpu_count": os.cpu_count(),
        "usable_cpu_count": usable_cpu_count(),
    }


def _config() -> dict:
    path = default_config_path()
    if not path.is_file():
        return {"path": str(path), "exists": False}
    try:
        content = load_raw(path)
    except ConfigFileError as error:
        return {"path": str(path), "exists": True, "error": error.message}
    return {"path": str(path), "exists": True, "content": content}


def _installed(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
