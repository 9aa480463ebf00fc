"""accel-convert as a real process: parallel runs match sequential ones, terminal colour and progress, cheap start."""

import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.transform.cli_helpers import PLAIN, SYNTAX_ERROR, TRAIN, converted, run, write

VARIANTS = [TRAIN.replace("lr=0.1", f"lr=0.{i}") for i in range(1, 7)]


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "scripts"
    for i, text in enumerate(VARIANTS):
        write(root / f"sub{i % 2}" / f"train_{i}.py", text)
    write(root / "plain_a.py", PLAIN)
    write(root / "sub1" / "plain_b.py", PLAIN)
    write(root / "broken.py", SYNTAX_ERROR)
    return root


def test_parallel_run_reports_and_writes_the_same_as_a_sequential_one(tree, tmp_path):
    diffs = [run("--diff", "-j", jobs, ".", cwd=tree) for jobs in (1, 2)]
    assert diffs[0].returncode == diffs[1].returncode == 123
    assert diffs[0].stdout == diffs[1].stdout
    assert diffs[0].stderr == diffs[1].stderr
    assert diffs[0].stdout.count(b"+++ b/") == len(VARIANTS)

    copies = {}
    for jobs in (1, 2):
        copy = shutil.copytree(tree, tmp_path / f"copy{jobs}")
        assert run("-j", jobs, ".", cwd=copy).returncode == 123
        copies[jobs] = {p.relative_to(copy): p.read_bytes() for p in sorted(copy.rglob("*.py"))}
    assert copies[1] == copies[2]
    for i, text in enumerate(VARIANTS):
        assert copies[2][Path(f"sub{i % 2}", f"train_{i}.py")].decode() == converted(text)
    assert copies[2][Path("broken.py")].decode() == SYNTAX_ERROR


def _run_in_terminal(args, cwd, env=None):
    """Run ``python -m accel_convert`` with stdout and stderr on a pseudo-terminal; return what it showed."""
    environ = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    main, child = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "accel_convert", *args],
        cwd=cwd,
        env={**environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=child,
        stderr=child,
    )
    os.close(child)
    shown = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the terminal closed
            break
        if not chunk:
            break
        shown += chunk
    process.wait(timeout=60)
    os.close(main)
    return process.returncode, shown.decode()


def test_terminal_gets_a_coloured_diff_unless_no_color_is_set(tree):
    code, shown = _run_in_terminal(["--diff", "sub0/train_0.py"], cwd=tree)
    assert code == 0
    assert "\x1b[32m+" in shown and "\x1b[36m@@" in shown
    code, shown = _run_in_terminal(["--diff", "sub0/train_0.py"], cwd=tree, env={"NO_COLOR": "1"})
    assert "+++ b/sub0/train_0.py" in shown
    assert "\x1b[3" not in shown
    _, shown = _run_in_terminal(["--diff", "--color", "sub0/train_0.py"], cwd=tree, env={"NO_COLOR": "1"})
    assert "\x1b[32m+" in shown  # an explicit --color wins over NO_COLOR


def test_terminal_shows_a_progress_bar_for_many_files(tree):
    code, shown = _run_in_terminal(["--check", "-j", "2", "."], cwd=tree)
    assert code == 123
    assert "Converting" in shown
    assert "9/9" in shown or "100%" in shown
    assert "would convert sub0/train_0.py" in shown
    _, few = _run_in_terminal(["--check", "sub0"], cwd=tree)
    assert "Converting" not in few


def _modules_loaded_after(path, cwd):
    code = (
        "import sys\n"
        "from accel_convert.shell.cli import main\n"
        f"try:\n    main(['--check', {str(path)!r}])\n"
        "except SystemExit:\n    pass\n"
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in ('libcst', 'torch'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=60)
    return set(done.stdout.split())


def test_files_without_training_code_do_not_load_libcst_and_torch_is_never_loaded(tree):
    assert _modules_loaded_after("plain_a.py", tree) == set()
    loaded = _modules_loaded_after("sub0/train_0.py", tree)
    assert "libcst" in loaded
    assert not any(m.split(".")[0] == "torch" for m in loaded)


def test_check_of_one_file_loads_nothing_that_only_diffs_writes_walks_or_configs_need(tree):
    """``--check file.py`` is a pre-commit hook's hot path: what only --diff, writing, walking a directory, a
    pyproject.toml or several workers need stays unloaded (measured against what the bare interpreter loads)."""
    listing = "import sys; print(' '.join(sys.modules))"
    bare = set(subprocess.run([sys.executable, "-c", listing], capture_output=True, text=True).stdout.split())
    code = (
        "import sys\n"
        "from accel_convert.shell.cli import main\n"
        "try:\n    main(['--check', 'sub0/train_0.py'])\n"
        "except SystemExit:\n    pass\n"
        f"{listing}\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tree, capture_output=True, text=True, timeout=60)
    loaded = set(done.stdout.split()) - bare
    assert "libcst" in loaded, done.stderr
    unneeded = {"difflib", "tomllib", "tempfile", "concurrent.futures", "pathspec", "shlex"}
    assert not unneeded & loaded
