"""Jupyter notebooks: named explicitly they fail with a message that says how to convert them; a directory walk
leaves them out."""

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
    assert result.stderr.splitlines()[-1].endswith("1 file failed to convert.")


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


def test_walking_a_directory_leaves_notebooks_out(project):
    notebook, train = project
    result = invoke(".")
    assert result.exit_code == 0, result.stderr
    assert notebook.read_text() == NOTEBOOK
    assert train.read_text() == converted(TRAIN)
    assert "ipynb" not in result.stderr
