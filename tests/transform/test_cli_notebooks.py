"""Jupyter notebooks: named explicitly they fail with a message that says how to convert them; a directory walk
leaves them out, and the summary counts and names them (-v lists each)."""

import json

import pytest

from tests.transform.cli_helpers import TRAIN, converted, invoke, write

NOTEBOOK = json.dumps(
    {"cells": [{"cell_type": "code", "metadata": {}, "source": TRAIN.splitlines(keepends=True)}], "nbformat": 4}
)


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return write(tmp_path / "explore.ipynb", NOTEBOOK), write(tmp_path / "train.py", TRAIN)


def _notebook_error(path):
    return (
        f"{path}: error: Jupyter notebooks are not converted: export the notebook as a script"
        f" (`jupyter nbconvert --to script {path}`) and convert the .py file"
    )


@pytest.mark.parametrize("mode", [[], ["--check"], ["--diff"]])
def test_a_named_notebook_fails_with_how_to_proceed_and_the_other_files_still_convert(project, mode):
    notebook, train = project
    result = invoke(*mode, "explore.ipynb", "train.py")
    assert result.exit_code == 123
    assert _notebook_error("explore.ipynb") in result.stderr.splitlines()
    assert notebook.read_text() == NOTEBOOK
    assert train.read_text() == (TRAIN if mode else converted(TRAIN))
    assert "explore.ipynb" not in result.stdout
    summary = next(line for line in result.stderr.splitlines() if "failed to convert" in line)
    assert summary.endswith("1 file failed to convert.")


def test_a_notebook_path_with_spaces_is_quoted_in_the_advice(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "my nb.ipynb", NOTEBOOK)
    result = invoke("my nb.ipynb")
    assert result.exit_code == 123
    assert "(`jupyter nbconvert --to script 'my nb.ipynb'`)" in result.stderr


def test_stdin_named_as_a_notebook_fails_and_writes_nothing():
    result = invoke("--stdin-filename", "explore.ipynb", "-", input=NOTEBOOK)
    assert result.exit_code == 123
    assert _notebook_error("explore.ipynb") in result.stderr.splitlines()
    assert result.stdout == ""


def test_walking_a_directory_leaves_notebooks_out_and_the_summary_counts_and_names_them(project):
    notebook, train = project
    write(project[0].parent / "nb" / "more.ipynb", NOTEBOOK)
    result = invoke(".")
    assert result.exit_code == 0, result.stderr
    assert notebook.read_text() == NOTEBOOK
    assert train.read_text() == converted(TRAIN)
    lines = result.stderr.splitlines()
    assert "1 file converted, 0 files left unchanged, 2 notebooks skipped." in lines
    named = next(line for line in lines if line.startswith("Jupyter notebooks are not converted: "))
    assert "explore.ipynb" in named and "nb/more.ipynb" in named
    assert "explore.ipynb: skipped" not in result.stderr  # -v lists each


def test_verbose_lists_each_skipped_notebook(project):
    result = invoke("-v", "--check", ".")
    lines = result.stderr.splitlines()
    assert "explore.ipynb: skipped: a Jupyter notebook (export it as a script to convert it)" in lines
    assert "1 file would be converted, 0 files would be left unchanged, 1 notebook skipped." in lines


def test_many_notebooks_are_counted_and_the_first_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for index in range(7):
        write(tmp_path / f"nb{index}.ipynb", NOTEBOOK)
    result = invoke(".")
    assert result.exit_code == 0
    lines = result.stderr.splitlines()
    assert "No Python files to convert." in lines
    named = next(line for line in lines if line.startswith("Jupyter notebooks are not converted: "))
    assert "nb0.ipynb, nb1.ipynb, nb2.ipynb, nb3.ipynb, nb4.ipynb and 2 more (-v lists them)" in named


def test_gitignored_notebooks_are_not_counted(project):
    import subprocess

    subprocess.run(["git", "init", "-q"], check=True)
    write(project[0].parent / ".gitignore", "explore.ipynb\n")
    result = invoke("--check", ".")
    assert "notebook" not in result.stderr
