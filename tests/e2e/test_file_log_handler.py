"""fixtures/file_log_handler with --log-dir: the converted script writes the same log file as the original with one
process, and with two processes the main process alone writes it (every line once)."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.cases import FIXTURES
from tests.e2e.runs import line_shape, metric_lines
from tests.launching import launch

CASE = FIXTURES / "file_log_handler"
TIMEOUT = 120


def _run(script: Path, log_dir: Path, processes: int = 1) -> str:
    log_dir.mkdir()
    args = ("--log-dir", str(log_dir))
    env = {"OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    if processes == 1:
        command = [sys.executable, str(script), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, env={**os.environ, **env})
    else:
        done = launch(script, *args, num_processes=processes, env=env, timeout=2 * TIMEOUT)
    assert done.returncode == 0, f"{script} ({processes} processes) failed:\n{done.stderr[-4000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    """name -> (printed lines, files in its log directory, lines of its train.log)."""
    folder = tmp_path_factory.mktemp("file_log_handler")
    runs = {"before": (CASE / "before.py", 1), "after": (CASE / "after.py", 1), "after, 2 processes": (CASE / "after.py", 2)}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(_run, script, folder / name.replace(", ", "-").replace(" ", "_"), n)
                   for name, (script, n) in runs.items()}
        printed = {name: metric_lines(future.result()) for name, future in futures.items()}
    result = {}
    for name in runs:
        log_dir = folder / name.replace(", ", "-").replace(" ", "_")
        log = log_dir / "train.log"
        result[name] = (printed[name], sorted(p.name for p in log_dir.iterdir()), log.read_text().splitlines() if log.exists() else [])
    return result


def test_one_process_writes_the_same_log_as_before(logs):
    printed, files, lines = logs["before"]
    assert files == ["train.log"]
    assert lines[0] == "INFO regression: training for 3 epochs" and lines[-1] == "INFO regression: done"
    assert len(lines) == 5
    assert logs["after"] == logs["before"]


def test_two_processes_write_each_log_line_once(logs):
    _, _, expected = logs["before"]
    printed, files, lines = logs["after, 2 processes"]
    assert files == ["train.log"]
    assert [line_shape(line) for line in lines] == [line_shape(line) for line in expected]
    # the main process logs the metrics it prints itself
    assert [line.split(": ", 1)[1] for line in lines[1:-1]] == printed
