"""Collecting files: directories, exclude patterns, .gitignore, explicit files and --force-exclude."""

import os
import subprocess

import pytest

from accel_convert.shell.walk import DEFAULT_EXCLUDE, Excluder, collect, collect_files


def _tree(root, *names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x = 1\n")


def _relative(paths, root):
    return sorted(os.path.relpath(p, root).replace(os.sep, "/") for p in paths)


@pytest.fixture
def project(tmp_path, monkeypatch):
    _tree(
        tmp_path,
        "train.py",
        "notes.txt",
        "pkg/model.py",
        "pkg/legacy/old.py",
        "build/gen.py",
        ".venv/lib/site.py",
        "pkg/data_old.py",
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_directory_yields_python_files_minus_default_excludes(project):
    files = collect_files(["."], Excluder(DEFAULT_EXCLUDE, "."))
    assert _relative(files, project) == ["pkg/data_old.py", "pkg/legacy/old.py", "pkg/model.py", "train.py"]


def test_exclude_patterns_by_name_folder_and_anchored_path(project):
    excluder = Excluder([*DEFAULT_EXCLUDE, "*_old.py", "pkg/legacy/"], ".")
    assert _relative(collect_files(["."], excluder), project) == ["pkg/model.py", "train.py"]
    anchored = Excluder(["/train.py"], ".")
    assert "train.py" not in _relative(collect_files(["."], anchored), project)
    assert "pkg/model.py" in _relative(collect_files(["."], anchored), project)


def test_patterns_are_relative_to_the_root_not_the_working_directory(project, monkeypatch):
    monkeypatch.chdir(project / "pkg")
    excluder = Excluder(["/pkg/legacy/"], str(project))
    assert _relative(collect_files(["."], excluder), project) == ["pkg/data_old.py", "pkg/model.py"]


def test_explicit_files_are_kept_unless_force_exclude(project):
    excluder = Excluder(["*_old.py", "build"], ".")
    explicit = ["pkg/data_old.py", "build/gen.py", "train.py"]
    assert _relative(collect_files(explicit, excluder), project) == ["build/gen.py", "pkg/data_old.py", "train.py"]
    assert _relative(collect_files(explicit, excluder, force_exclude=True), project) == ["train.py"]


def test_each_file_once_in_a_stable_order(project):
    files = collect_files(["train.py", ".", "./train.py"], Excluder(DEFAULT_EXCLUDE, "."))
    assert files[0] == "train.py"
    assert len(files) == len(set(files)) == 4


def test_gitignore_is_honoured_inside_a_git_work_tree(project):
    subprocess.run(["git", "init", "-q"], check=True)
    (project / ".gitignore").write_text("pkg/legacy/\n")
    (project / "pkg" / ".gitignore").write_text("data_*.py\n")
    subprocess.run(["git", "add", "train.py"], check=True)  # tracked and untracked files both count
    files = collect_files(["."], Excluder(DEFAULT_EXCLUDE, "."))
    assert _relative(files, project) == ["pkg/model.py", "train.py"]
    # a file named explicitly is converted even when git ignores it (pre-commit only passes tracked files)
    assert _relative(collect_files(["pkg/data_old.py"], Excluder(DEFAULT_EXCLUDE, ".")), project) == ["pkg/data_old.py"]


def test_gitignore_of_a_subdirectory_walk(project):
    subprocess.run(["git", "init", "-q"], check=True)
    (project / ".gitignore").write_text("legacy/\n")
    assert _relative(collect_files(["pkg"], Excluder(DEFAULT_EXCLUDE, ".")), project) == [
        "pkg/data_old.py",
        "pkg/model.py",
    ]


def test_outside_git_the_walk_prunes_excluded_folders(project, monkeypatch):
    assert subprocess.run(["git", "rev-parse"], capture_output=True).returncode != 0, "tmp_path must not be in a repo"
    visited = []
    real_walk = os.walk

    def recording_walk(top):
        for parent, dirs, files in real_walk(top):
            visited.append(os.path.relpath(parent, project))
            yield parent, dirs, files

    monkeypatch.setattr(os, "walk", recording_walk)
    collect_files(["."], Excluder(DEFAULT_EXCLUDE, "."))
    assert ".venv" not in visited and "build" not in visited
    assert "pkg" in visited


def test_excluded_directory_named_with_force_exclude_gives_nothing(project):
    assert collect_files(["build"], Excluder(["build"], "."), force_exclude=True) == []


def test_collect_names_the_explicit_files_and_the_notebooks_found(project):
    _tree(project, "nb/explore.ipynb", "pkg/analysis.ipynb", "build/old.ipynb")
    collected = collect(["train.py", "."], Excluder(DEFAULT_EXCLUDE, "."))
    assert collected.explicit == frozenset({"train.py"})
    assert _relative(collected.notebooks, project) == ["nb/explore.ipynb", "pkg/analysis.ipynb"]  # build/ excluded
    assert not any(path.endswith(".ipynb") for path in collected.files)
    assert collected.files == collect_files(["train.py", "."], Excluder(DEFAULT_EXCLUDE, "."))


def test_notebooks_named_explicitly_are_files_to_convert_not_found_notebooks(project):
    _tree(project, "explore.ipynb")
    collected = collect(["explore.ipynb"], Excluder(DEFAULT_EXCLUDE, "."))
    assert collected.files == ["explore.ipynb"] and collected.notebooks == []


def test_git_lists_notebooks_too(project):
    subprocess.run(["git", "init", "-q"], check=True)
    _tree(project, "explore.ipynb", "ignored.ipynb")
    (project / ".gitignore").write_text("ignored.ipynb\n")
    assert _relative(collect(["."], Excluder(DEFAULT_EXCLUDE, ".")).notebooks, project) == ["explore.ipynb"]
