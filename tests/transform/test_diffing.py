"""Unified diffs: git-style headers, applicable with `git apply`, including files without a final newline."""

import shutil
import subprocess

import click
import pytest

from accel_convert.shell.diffing import colorize, split_lines, unified_diff

CASES = {
    "lf": ("import torch\nx = 1\ny = 2\n", "import torch\nfrom accel import Accelerator\nx = 1\ny = 3\n"),
    "crlf": ("import torch\r\nx = 1\r\n", "import torch\r\nx = 2\r\n"),
    "old-without-final-newline": ("a = 1\nb = 2", "a = 1\nb = 3\n"),
    "new-without-final-newline": ("a = 1\nb = 2\n", "a = 1\nb = 3"),
    "both-without-final-newline": ("a = 1\nb = 2", "a = 0\nb = 2"),
    "form-feed": ("a = 1\n\x0c\nb = 2\n", "a = 1\n\x0c\nb = 3\n"),
    "from-empty": ("", "import torch\n"),
}


def _git_apply(tmp_path, before, after, diff):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    target = tmp_path / "pkg" / "train.py"
    target.parent.mkdir()
    target.write_bytes(before.encode())
    subprocess.run(["git", "apply", "--check", "-"], input=diff.encode(), cwd=tmp_path, check=True)
    subprocess.run(["git", "apply", "-"], input=diff.encode(), cwd=tmp_path, check=True)
    return target.read_bytes().decode()


@pytest.mark.parametrize("name", CASES)
def test_git_apply_reproduces_the_new_text(tmp_path, name):
    before, after = CASES[name]
    diff = unified_diff(before, after, "pkg/train.py")
    assert _git_apply(tmp_path, before, after, diff) == after


def test_headers_use_a_and_b_prefixes_and_mark_a_missing_final_newline():
    diff = unified_diff("a = 1\nb = 2", "a = 1\nb = 3", "train.py")
    assert diff.splitlines()[:2] == ["--- a/train.py", "+++ b/train.py"]
    assert diff.endswith("-b = 2\n\\ No newline at end of file\n+b = 3\n\\ No newline at end of file\n")


def test_equal_texts_give_an_empty_diff():
    assert unified_diff("x = 1\n", "x = 1\n", "train.py") == ""


def test_paths_below_the_working_directory_are_relative_and_others_absolute_as_git_writes_them(tmp_path, monkeypatch):
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    diff = unified_diff("a\n", "b\n", str(tmp_path / "work" / "sub" / "train.py"))
    assert diff.splitlines()[:2] == ["--- a/sub/train.py", "+++ b/sub/train.py"]
    assert unified_diff("a\n", "b\n", "./sub/../sub/train.py") == diff
    rooted = str(tmp_path / "other" / "train.py").lstrip("/")
    for given in (str(tmp_path / "other" / "train.py"), "../other/train.py"):
        outside = unified_diff("a\n", "b\n", given)
        assert outside.splitlines()[:2] == [f"--- a/{rooted}", f"+++ b/{rooted}"]


def test_diff_of_a_file_outside_the_working_directory_applies_from_the_root(tmp_path, monkeypatch):
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    script = tmp_path / "other" / "train.py"
    script.parent.mkdir()
    script.write_text("a = 1\nb = 2\n")
    diff = unified_diff("a = 1\nb = 2\n", "a = 1\nb = 3\n", "../other/train.py")
    subprocess.run(["git", "apply", "-"], input=diff.encode(), cwd="/", check=True)
    assert script.read_text() == "a = 1\nb = 3\n"
    if shutil.which("patch"):
        subprocess.run(["patch", "-R", "-p1", "-s", "-d", "/"], input=diff.encode(), check=True)
        assert script.read_text() == "a = 1\nb = 2\n"


def test_split_lines_breaks_only_at_newlines():
    assert split_lines("a\x0cb\r\nc\x1dd\ne") == ["a\x0cb\r\n", "c\x1dd\n", "e"]
    assert split_lines("") == []


def test_colorize_colours_each_kind_of_line_and_keeps_the_text():
    diff = unified_diff("keep\nold\n", "keep\nnew\n", "train.py")
    coloured = colorize(diff)
    lines = coloured.splitlines()
    assert lines[0] == "\x1b[1m--- a/train.py\x1b[0m"
    assert lines[2].startswith("\x1b[36m@@")
    assert "\x1b[31m-old\x1b[0m" in lines
    assert "\x1b[32m+new\x1b[0m" in lines
    assert " keep" in lines
    assert click.unstyle(coloured) == diff
