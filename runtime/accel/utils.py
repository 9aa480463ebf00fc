"""Small helpers shared by the runtime: reading the launcher's environment variables, seeding, atomic saving."""

from __future__ import annotations

import contextlib
import os
import random
import uuid
from typing import Any

import numpy as np
import torch

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def env_bool(name: str, default: bool) -> bool:
    """Read a boolean environment variable (true/false/1/0/yes/no, any case); unset or empty gives ``default``."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    value = raw.lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"environment variable {name}={raw!r} is not a boolean; allowed: true, false, 1, 0, yes, no")


def env_int(name: str, default: int) -> int:
    """Read an integer environment variable; unset or empty gives ``default``."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer") from None


def env_choice(name: str, choices: tuple[str, ...], default: str) -> str:
    """Read an environment variable that must be one of ``choices`` (case-insensitive); unset gives ``default``."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    value = raw.lower()
    if value not in choices:
        raise ValueError(f"environment variable {name}={raw!r} is not allowed; allowed: {', '.join(choices)}")
    return value


def set_seed(seed: int, device_specific: bool = False, deterministic: bool = False) -> None:
    """Seed Python's ``random``, NumPy and torch (CPU and every CUDA device).

    ``device_specific=True`` adds the process index to the seed so that each process draws different numbers;
    ``deterministic=True`` asks torch for deterministic algorithms.
    """
    if device_specific:
        seed += int(os.environ.get("RANK", "0"))
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        torch.use_deterministic_algorithms(True)


def save_atomic(obj: Any, f: str | os.PathLike) -> None:
    """``torch.save`` into a temporary file next to ``f``, then rename it over ``f`` (a crash leaves ``f`` intact)."""
    path = os.fspath(f)
    directory, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(directory, f".tmp-{name}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as handle:  # plain open: the file gets the usual permissions (umask)
            torch.save(obj, handle)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
