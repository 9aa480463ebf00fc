"""The pre-commit hook, installed by pre-commit itself from this repository: an unconverted training script
fails the check with the diff shown and the command that converts it; once converted, it passes."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from accel_convert.shell.diffing import unified_diff
from tests.transform.cli_helpers import PLAIN, TRAIN, converted, invoke, write

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,  # pre-commit builds the hook's virtualenv (pip install of this repository): about 30 s
    pytest.mark.timeout(600),
    pytest.mark.skipif(shutil.which("pre-commit") is None, reason="pre-commit is not installed"),
    pytest.mark.skipif(not (REPO_ROOT / ".git").exists(), reason="needs the project's git checkout"),
]


def _try_repo(cwd, home, rev, *files):
    """`pre-commit try-repo` at the committed ``rev`` (a fixed rev lets the second call reuse the environment)."""
    # The hook's virtualenv is isolated from this one: it must work with the converter's own dependencies (no torch).
    env = {**os.environ, "PRE_COMMIT_HOME": str(home)}
    return subprocess.run(
        ["pre-commit", "try-repo", str(REPO_ROOT), "accel-convert", "--ref", rev, "--files", *files],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )


def test_hook_fails_with_the_diff_then_passes_once_converted(tmp_path, monkeypatch):
    rev = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    project = tmp_path / "project"
    write(project / "train.py", TRAIN)
    write(project / "helpers.py", PLAIN)
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    subprocess.run(["git", "add", "."], cwd=project, check=True)

    failed = _try_repo(project, tmp_path / "pre-commit-home", rev, "train.py", "helpers.py")
    output = failed.stdout + failed.stderr
    assert failed.returncode == 1, output
    assert "accel-convert" in output and "Failed" in output
    assert "- exit code: 1" in output
    assert unified_diff(TRAIN, converted(TRAIN), "train.py") in output
    assert "To convert it (then review and stage the result), run: accel-convert --force-exclude train.py" in output
    assert (project / "train.py").read_text() == TRAIN  # the check rewrites nothing

    monkeypatch.chdir(project)
    assert invoke("train.py").exit_code == 0
    passed = _try_repo(project, tmp_path / "pre-commit-home", rev, "train.py", "helpers.py")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "Passed" in passed.stdout
