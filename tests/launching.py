"""Run a Python script under `accel launch` for multi-process tests (always with a timeout)."""

from __future__ import annotations

import os
import subprocess
import sys


def launch(script, *script_args, num_processes=2, cpu=True, launch_args=(), env=None, timeout=180, cwd=None):
    """Start ``script`` under ``accel launch`` and return the CompletedProcess (stdout/stderr as text)."""
    cmd = [sys.executable, "-m", "accel", "launch", "--num-processes", str(num_processes)]
    if cpu:
        cmd.append("--cpu")
    cmd += [*launch_args, str(script), *map(str, script_args)]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd)
