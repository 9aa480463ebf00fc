"""A warm interpreter for the end-to-end runs: it imports torch and the runtime once, then forks one child per run
(``python script.py args`` or ``accel launch ...``), so that a run does not pay torch's import (seconds on a small
machine; most of a fixture's run) again. The child sets up what a fresh ``python script.py`` would have: working
directory, environment, ``sys.argv``, ``sys.path[0]``, stdout and stderr, ``__main__``, exit status and atexit
handlers. The workers that ``accel launch`` starts (through torchrun's agent, which runs in the child) are forked
from the child too, each set up as ``python -u script.py args`` with the agent's environment and log files.

Protocol (one JSON object per line on stdin): {"argv": [...], "cwd": ..., "env": {...}, "out": path, "err": path,
"status": path}. For each, a waiter child forks the runner and writes the runner's exit status (a negative number:
killed by that signal) to "status" once it ends; its pid is printed on stdout, one per line, for timeouts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

STARTUP_TIMEOUT = 120


def serve() -> None:
    import torch  # noqa: F401  (what every run imports first)

    import accel  # noqa: F401
    from accel.cli import main  # noqa: F401  (the launcher's own imports)

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # waiters are reaped by the kernel
    print("ready", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _wait_for_runner(request)
        print(pid, flush=True)


def _wait_for_runner(request: dict) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    runner = os.fork()
    if runner == 0:
        os.setpgid(0, 0)  # its own process group: a timeout stops the launch's workers too
        _run(request)
    with open(request["status"] + ".pid", "w") as handle:
        handle.write(str(runner))
    _, status = os.waitpid(runner, 0)
    code = os.waitstatus_to_exitcode(status)
    Path(request["status"] + ".tmp").write_text(str(code))
    os.replace(request["status"] + ".tmp", request["status"])
    os._exit(0)


def _run(request: dict) -> None:
    code = 1
    try:
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        for fd, path in ((1, request["out"]), (2, request["err"])):
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(handle, fd)
            os.close(handle)
        sys.stdin = open(os.devnull)
        argv = request["argv"]
        if argv[0] == "accel":
            from accel.cli import main

            _fork_workers()
            sys.argv = argv
            code = _exit_code(lambda: main(args=argv[1:], prog_name="accel"))
        else:
            code = _run_script(argv)
    finally:
        _exit(code)


def _run_script(argv: list[str]) -> int:
    """``python script.py args`` in this interpreter; its exit status."""
    import runpy

    script = os.path.abspath(argv[0])
    sys.argv = [argv[0], *argv[1:]]
    sys.path[0] = os.path.dirname(script)
    return _exit_code(lambda: runpy.run_path(script, run_name="__main__"))


def _exit(code: int) -> None:
    import atexit

    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _fork_workers() -> None:
    """Make torchrun's agent (which ``accel launch`` runs in this process) fork its workers from here, torch
    already imported, instead of starting fresh interpreters: each worker of a launch saves torch's import. A
    worker is what ``python -u script.py args`` with the agent's environment and log files would be; commands of
    another shape are started as usual."""
    from torch.distributed.elastic.multiprocessing.subprocess_handler import subprocess_handler

    started = subprocess_handler.SubprocessHandler._popen

    def popen(handler, args, env):
        command = [str(arg) for arg in args]
        if len(command) < 3 or command[0] != sys.executable or command[1] != "-u" or command[2].startswith("-"):
            return started(handler, args, env)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _worker(handler, command[2:], env)
        return _ForkedWorker(pid)

    subprocess_handler.SubprocessHandler._popen = popen


def _worker(handler, argv: list[str], env: dict[str, str]) -> None:
    code = 1
    try:
        os.setsid()  # as torchrun's start_new_session: the agent stops a worker with killpg(pid)
        for number in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD):
            signal.signal(number, signal.SIG_DFL)  # not the agent's handlers
        signal.signal(signal.SIGINT, signal.default_int_handler)
        agent = os.getppid()
        threading.Thread(target=_stop_when_orphaned, args=(agent,), daemon=True).start()
        os.environ.clear()
        os.environ.update(env)
        for fd, log in ((1, handler._stdout), (2, handler._stderr)):
            if log is not None:
                os.dup2(log.fileno(), fd)
        sys.stdout.reconfigure(write_through=True)  # python -u
        sys.stderr.reconfigure(write_through=True)
        code = _run_script(argv)
    finally:
        _exit(code)


def _stop_when_orphaned(agent: int) -> None:
    """A worker whose agent died (a test's timeout kills the launch's process group, not the workers' sessions)
    stops too, as a fresh worker would find its rendezvous gone."""
    while os.getppid() == agent:
        time.sleep(0.5)
    os._exit(1)


class _ForkedWorker:
    """What torchrun's agent uses of a worker's ``Popen``: ``pid``, ``poll()``, ``wait()``."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode = None

    def poll(self):
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            time.sleep(0.01)
        return self.returncode


def _exit_code(call) -> int:
    try:
        call()
    except SystemExit as exit:
        if exit.code is None:
            return 0
        if isinstance(exit.code, int):
            return exit.code
        print(exit.code, file=sys.stderr)
        return 1
    except BaseException:  # what the interpreter prints for an uncaught exception
        import traceback

        traceback.print_exc()
        return 1
    return 0


class Warm:
    """The warm interpreter, started with ``env``; ``run`` may be called from several threads at once."""

    def __init__(self, env: dict[str, str], scratch: Path):
        self._scratch = scratch
        self._lock = threading.Lock()
        self._count = 0
        root = Path(__file__).resolve().parents[2]
        self._process = subprocess.Popen(
            [sys.executable, "-c", "from tests.e2e.warm import serve; serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=root,
        )
        if self._process.stdout.readline().strip() != "ready":
            raise RuntimeError("the warm interpreter for the end-to-end runs did not start")

    def run(self, argv: list[str], cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
        with self._lock:
            self._count += 1
            base = self._scratch / f"warm-{self._count}"
            request = {"argv": argv, "cwd": str(cwd), "env": env, "out": f"{base}.out", "err": f"{base}.err",
                       "status": f"{base}.status"}
            self._process.stdin.write(json.dumps(request) + "\n")
            self._process.stdin.flush()
            self._process.stdout.readline()
        status = Path(request["status"])
        deadline = time.monotonic() + timeout
        while not status.exists():
            if time.monotonic() > deadline:
                self._kill(Path(request["status"] + ".pid"))
                out, err = _read(request["out"]), _read(request["err"])
                raise subprocess.TimeoutExpired(argv, timeout, out, err)
            time.sleep(0.05)
        return subprocess.CompletedProcess(argv, int(status.read_text()), _read(request["out"]), _read(request["err"]))

    @staticmethod
    def _kill(pid_file: Path) -> None:
        try:
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        self._process.stdin.close()
        self._process.wait(timeout=30)


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""
