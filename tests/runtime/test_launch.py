"""`accel launch` end to end: real processes through torchrun (each test has a timeout)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner

from accel.cli import main
from tests.launching import launch

WORKERS = Path(__file__).parent / "launch_workers"


@pytest.fixture
def no_config(tmp_path, monkeypatch):
    """Point the default config path at a missing file, so the user's own config never leaks in."""
    env = {"ACCEL_CONFIG_FILE": str(tmp_path / "absent.yaml")}
    monkeypatch.setenv("ACCEL_CONFIG_FILE", env["ACCEL_CONFIG_FILE"])
    return env


def read_records(out_dir: Path) -> dict[int, dict]:
    return {int(p.stem[4:]): json.loads(p.read_text()) for p in out_dir.glob("rank*.json")}


@pytest.mark.timeout(120)
def test_flags_reach_every_worker_and_script_args_pass_verbatim(tmp_path, no_config):
    stale = {"ACCEL_USE_FSDP": "true", "ACCEL_ZERO_STAGE": "3"}  # inherited contract variables must not leak
    result = launch(
        WORKERS / "record_env.py", tmp_path, "--foo", "-x", "--num_processes", "7", "--", "-m", "x y",
        launch_args=["--mixed_precision", "bf16", "--gradient-accumulation-steps", "4"], env={**no_config, **stale})
    assert result.returncode == 0, result.stderr
    records = read_records(tmp_path)
    assert sorted(records) == [0, 1]
    for rank, record in records.items():
        env = record["env"]
        assert env["RANK"] == str(rank) and env["LOCAL_RANK"] == str(rank)
        assert env["WORLD_SIZE"] == "2" and env["LOCAL_WORLD_SIZE"] == "2"
        assert env["MASTER_ADDR"] and int(env["MASTER_PORT"]) > 0
        assert env["ACCEL_MIXED_PRECISION"] == "bf16"
        assert env["ACCEL_USE_CPU"] == "true"
        assert env["ACCEL_GRADIENT_ACCUMULATION_STEPS"] == "4"
        assert env["ACCEL_USE_FSDP"] == "false" and env["ACCEL_USE_DEEPSPEED"] == "false"
        assert env.get("ACCEL_ZERO_STAGE") is None
        assert env["OMP_NUM_THREADS"] == "1"  # set by tests/launching.py: the user's value is kept
        assert record["argv"] == ["--foo", "-x", "--num_processes", "7", "--", "-m", "x y"]
    assert records[0]["env"]["MASTER_PORT"] == records[1]["env"]["MASTER_PORT"]


@pytest.mark.timeout(120)
def test_config_file_from_accel_config_is_read_and_flags_win(tmp_path, no_config):
    config = tmp_path / "config.yaml"
    written = CliRunner().invoke(main, ["config", "--config-file", str(config), "--num-processes", "2", "--cpu",
                                        "--mixed-precision", "fp16", "--gradient-accumulation-steps", "3"])
    assert written.exit_code == 0, written.output
    out = tmp_path / "out"
    out.mkdir()
    result = launch(WORKERS / "record_env.py", out, num_processes=2, cpu=False,
                    launch_args=["--config-file", str(config), "--mixed-precision", "bf16"], env=no_config)
    assert result.returncode == 0, result.stderr
    records = read_records(out)
    assert sorted(records) == [0, 1]  # num_processes from the file
    for record in records.values():
        assert record["env"]["ACCEL_USE_CPU"] == "true"  # from the file
        assert record["env"]["ACCEL_GRADIENT_ACCUMULATION_STEPS"] == "3"  # from the file
        assert record["env"]["ACCEL_MIXED_PRECISION"] == "bf16"  # the flag beats the file's fp16


@pytest.mark.timeout(120)
def test_two_machines_on_localhost_meet_at_the_rendezvous(tmp_path, no_config):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    machines = [
        subprocess.Popen(
            [sys.executable, "-m", "accel", "launch", "--cpu", "--num-machines", "2", "--num-processes", "2",
             "--machine-rank", str(rank), "--main-process-ip", "127.0.0.1", "--main-process-port", str(port),
             str(WORKERS / "record_env.py"), str(tmp_path), "--machine", str(rank)],
            env={**os.environ, **no_config, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        for rank in (0, 1)]
    try:
        outcomes = [machine.communicate(timeout=90) for machine in machines]
    finally:
        for machine in machines:
            if machine.poll() is None:
                machine.kill()
    assert [m.returncode for m in machines] == [0, 0], [err for _, err in outcomes]
    records = read_records(tmp_path)
    assert sorted(records) == [0, 1]
    for rank, record in records.items():
        env = record["env"]
        assert record["argv"] == ["--machine", str(rank)]  # static rendezvous: machine R holds global rank R
        assert (env["WORLD_SIZE"], env["LOCAL_WORLD_SIZE"], env["LOCAL_RANK"]) == ("2", "1", "0")
        assert (env["MASTER_ADDR"], env["MASTER_PORT"]) == ("127.0.0.1", str(port))


@pytest.mark.timeout(120)
def test_module_flag_runs_a_module_like_python_m(tmp_path, no_config):
    result = launch("record_env", tmp_path, "--bar", num_processes=1, launch_args=["-m"],
                    env={**no_config, "PYTHONPATH": str(WORKERS)})
    assert result.returncode == 0, result.stderr
    records = read_records(tmp_path)
    assert list(records) == [0]
    assert records[0]["env"]["WORLD_SIZE"] == "1"
    assert records[0]["argv"] == ["--bar"]


@pytest.mark.timeout(120)
def test_a_failing_worker_stops_the_job_with_its_exit_code(tmp_path, no_config):
    start = time.monotonic()
    result = launch(WORKERS / "fail_on_rank.py", tmp_path, 1, 7, env=no_config, timeout=100)
    elapsed = time.monotonic() - start
    assert result.returncode == 7, result.stderr
    assert elapsed < 30, f"took {elapsed:.1f}s to stop after a worker failed"
    assert "process 1" in result.stderr and "exit code 7" in result.stderr
    children = [int(f.read_text()) for f in tmp_path.glob("child*")]
    assert len(children) == 1  # rank 0's own child process, stopped with its process group
    assert_all_gone(worker_pids(tmp_path, 2) + children)


@pytest.mark.timeout(120)
def test_ctrl_c_stops_every_process(tmp_path, no_config):
    cmd = [sys.executable, "-m", "accel", "launch", "--num-processes", "2", "--cpu", str(WORKERS / "sleep.py"),
           str(tmp_path)]
    launcher = subprocess.Popen(cmd, env={**os.environ, **no_config, "OMP_NUM_THREADS": "1"},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pids = wait_for_pids(tmp_path, 2, launcher)
        descendants = [p.pid for p in psutil.Process(launcher.pid).children(recursive=True)]
        assert set(pids) <= set(descendants)
        launcher.send_signal(signal.SIGINT)
        _, stderr = launcher.communicate(timeout=60)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 130, stderr
    assert_all_gone(descendants)


def worker_pids(out_dir: Path, count: int) -> list[int]:
    files = sorted(out_dir.glob("pid*"))
    assert len(files) == count
    return [int(f.read_text()) for f in files]


def wait_for_pids(out_dir: Path, count: int, launcher: subprocess.Popen) -> list[int]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        files = [f for f in out_dir.glob("pid*") if f.read_text()]
        if len(files) == count:
            return [int(f.read_text()) for f in files]
        assert launcher.poll() is None, launcher.communicate()[1]
        time.sleep(0.2)
    raise AssertionError(f"workers did not start: {launcher.communicate(timeout=5)}")


def assert_all_gone(pids: list[int]) -> None:
    deadline = time.monotonic() + 5
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in pids if _alive(pid)]
        time.sleep(0.1)
    assert not alive, f"processes left behind: {alive}"


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.timeout(180)
def test_accelerator_in_the_script_picks_up_the_launch_flags_and_prints_whole_lines(tmp_path, no_config):
    result = launch(WORKERS / "accelerator_settings.py", tmp_path,
                    launch_args=["--mixed-precision", "bf16", "--gradient-accumulation-steps", "2"],
                    env={**no_config, "PYTHONUNBUFFERED": "1"})
    assert result.returncode == 0, result.stderr
    records = {int(p.stem[5:]): json.loads(p.read_text()) for p in tmp_path.glob("accel*.json")}
    assert records == {rank: {"mixed_precision": "bf16", "num_processes": 2, "process_index": rank, "device": "cpu",
                              "gradient_accumulation_steps": 2} for rank in (0, 1)}
    # Both processes print at once, unbuffered: each line still arrives whole.
    printed = [line for line in result.stdout.splitlines() if line.startswith("process") or "line" in line]
    expected = {f"process {rank} line {line} {'x' * 40}" for rank in (0, 1) for line in range(300)}
    assert sorted(printed) == sorted(expected)
