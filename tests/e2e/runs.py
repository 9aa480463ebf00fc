"""Running fixture scripts as subprocesses, a few at a time (forked from a warm interpreter, ``warm``), and reading the
metric lines they print."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.warm import Warm
from tests.launching import launch

ONE_PROCESS_TIMEOUT = 120
LAUNCH_TIMEOUT = 240
# One thread per math library keeps concurrent runs from fighting over the 2 cores; before and after get the same.
_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0", "PYTHONIOENCODING": "utf-8"}
_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|nan|inf")


@dataclass(frozen=True)
class Run:
    """One subprocess: ``script`` with ``args``, under plain python (processes=1) or ``accel launch``.

    ``launcher="torchrun"`` runs one process under ``torch.distributed.run`` instead (a hand-written DDP script
    reads its rank from the variables torchrun sets)."""

    script: Path
    args: tuple[str, ...] = ()
    processes: int = 1
    launcher: str = "python"

    @property
    def direct_command(self) -> list[str]:
        """The command that starts the run without accel launch: python, or torchrun with ``processes``."""
        if self.launcher == "torchrun":
            return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(self.processes)]
        return [sys.executable]

    def describe(self) -> str:
        direct = self.processes == 1 or self.launcher == "torchrun"
        how = " ".join(self.direct_command) if direct else f"accel launch --num-processes {self.processes} --cpu"
        return " ".join([how, str(self.script), *self.args])


def execute(run: Run, cwd: Path, warm: Warm | None = None) -> subprocess.CompletedProcess:
    """Start ``run`` and wait for it (with a timeout; a timeout comes back as a failed process, not an exception);
    ``warm``: the warm interpreter to fork it from (plain python runs and ``accel launch`` alike)."""
    try:
        if warm is not None and run.launcher == "python":
            env = {**os.environ, **_ENV}
            if run.processes == 1:
                return warm.run([str(run.script), *run.args], cwd, env, ONE_PROCESS_TIMEOUT)
            argv = ["accel", "launch", "--num-processes", str(run.processes), "--cpu", str(run.script), *run.args]
            return warm.run(argv, cwd, env, LAUNCH_TIMEOUT)
        if run.processes == 1 or run.launcher == "torchrun":
            return subprocess.run(
                [*run.direct_command, str(run.script), *run.args],
                capture_output=True,
                text=True,
                timeout=ONE_PROCESS_TIMEOUT if run.processes == 1 else LAUNCH_TIMEOUT,
                env={**os.environ, **_ENV},
                cwd=cwd,
            )
        return launch(run.script, *run.args, num_processes=run.processes, env=_ENV, timeout=LAUNCH_TIMEOUT, cwd=cwd)
    except subprocess.TimeoutExpired as expired:
        stdout = expired.stdout.decode(errors="replace") if isinstance(expired.stdout, bytes) else expired.stdout or ""
        stderr = expired.stderr.decode(errors="replace") if isinstance(expired.stderr, bytes) else expired.stderr or ""
        return subprocess.CompletedProcess(expired.cmd, -9, stdout, stderr + f"\nTIMED OUT after {expired.timeout}s")


class RunPool:
    """Runs subprocesses on a small thread pool; each distinct Run executes once and its result is shared."""

    def __init__(self, workers: int, cwd: Path):
        self._executor = ThreadPoolExecutor(max_workers=workers)
        self._futures: dict[Run, Future] = {}
        self._cwd = cwd
        scratch = cwd / "warm"
        scratch.mkdir()
        # ACCEL_TESTS_COLD=1: every run in a fresh interpreter, as before (to rule the warm interpreter out)
        self._warm = None if os.environ.get("ACCEL_TESTS_COLD") == "1" else Warm({**os.environ, **_ENV}, scratch)

    def submit(self, run: Run) -> None:
        if run not in self._futures:
            # a working directory of its own: a script that writes a file there (best.pt) and reads it back
            # must not meet another run's file
            cwd = self._cwd / f"run-{len(self._futures)}"
            cwd.mkdir()
            self._futures[run] = self._executor.submit(execute, run, cwd, self._warm)

    def result(self, run: Run) -> subprocess.CompletedProcess:
        self.submit(run)
        return self._futures[run].result()

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        if self._warm is not None:
            self._warm.close()


def metric_lines(stdout: str) -> list[str]:
    """The non-empty lines a fixture printed, trailing whitespace dropped (fixtures print only metrics)."""
    return [line.rstrip() for line in stdout.splitlines() if line.strip()]


def line_shape(line: str) -> str:
    """A metric line with every number replaced by '#': what was reported, without the values."""
    return _NUMBER.sub("#", line)


def failure_report(run: Run, completed: subprocess.CompletedProcess) -> str:
    """What a reader needs when a run failed: the command, the exit code and the end of both streams."""
    return (
        f"{run.describe()} exited with {completed.returncode}\n"
        f"--- stdout (last 2000 chars) ---\n{completed.stdout[-2000:]}\n"
        f"--- stderr (last 4000 chars) ---\n{completed.stderr[-4000:]}"
    )
