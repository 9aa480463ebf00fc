"""Which files a run converts: the paths given, Python files found in directories, minus the excluded ones.

Exclude patterns use .gitignore syntax and are matched against paths relative to the project root (the folder
of the configuration file, else the working directory); a pattern without a slash such as ``build`` matches
that name at any depth. Inside a git work tree, directories are listed through ``git ls-files`` so that
.gitignore (and .git/info/exclude, core.excludesFile) is honoured exactly as git does; elsewhere they are
walked on disk. Files named explicitly are always converted unless ``force_exclude`` is set. Jupyter notebooks
found in a directory are not converted but are listed, so that the summary can name them.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from typing import NamedTuple

DEFAULT_EXCLUDE = (
    ".bzr",
    ".direnv",
    ".eggs",
    ".git",
    ".hg",
    ".mypy_cache",
    ".nox",
    ".pytest_cache",
    ".ruff_cache",
    ".svn",
    ".tox",
    ".venv",
    "__pycache__",
    "__pypackages__",
    "_build",
    "buck-out",
    "build",
    "dist",
    "node_modules",
    "site-packages",
    "venv",
)


class Excluder:
    """Decides whether a path matches one of the exclude patterns."""

    def __init__(self, patterns: Iterable[str], root: str):
        self.patterns = tuple(patterns)
        self.root = os.path.abspath(root)

    @functools.cached_property
    def _spec(self):
        import pathspec  # only paid for when something is matched

        return pathspec.GitIgnoreSpec.from_lines(self.patterns)

    def excluded(self, path: str, is_dir: bool = False) -> bool:
        """True when ``path``, or a folder above it, matches a pattern."""
        absolute = os.path.abspath(path)
        relative = os.path.relpath(absolute, self.root)
        if relative.startswith(os.pardir):  # outside the project: match what can be matched
            relative = absolute
        relative = relative.replace(os.sep, "/")
        return self._spec.match_file(relative + "/" if is_dir else relative)


class Collected(NamedTuple):
    """What a run works on: ``files`` to convert (in a stable order, each once), the subset of them ``explicit``
    (named on the command line, not found in a directory), and the Jupyter ``notebooks`` found in directories
    (not converted)."""

    files: list[str]
    explicit: frozenset[str]
    notebooks: list[str]


def collect(paths: Iterable[str], excluder: Excluder, force_exclude: bool = False) -> Collected:
    """The files to convert, the ones of them named explicitly, and the notebooks found in directories.

    ``paths`` must exist. Directories contribute their ``*.py`` files (and list their ``*.ipynb`` notebooks) that
    are neither excluded nor ignored by git; explicit files are kept as given (also non-``.py`` ones), unless
    ``force_exclude`` and they match an exclude.
    """
    found: dict[str, None] = {}
    explicit: set[str] = set()
    notebooks: dict[str, None] = {}
    for path in paths:
        if os.path.isdir(path):
            if force_exclude and excluder.excluded(path, is_dir=True):
                continue
            for file in _listed_files(path, excluder):
                if file.endswith(".py"):
                    found.setdefault(file)
                else:
                    notebooks.setdefault(file)
        elif not (force_exclude and excluder.excluded(path)):
            found.setdefault(os.path.normpath(path))
            explicit.add(os.path.normpath(path))
    return Collected(list(found), frozenset(explicit), [path for path in notebooks if path not in found])


def collect_files(paths: Iterable[str], excluder: Excluder, force_exclude: bool = False) -> list[str]:
    """The files to convert, in a stable order and each once (see ``collect``)."""
    return collect(paths, excluder, force_exclude).files


def _listed_files(directory: str, excluder: Excluder) -> list[str]:
    """The ``*.py`` files and ``*.ipynb`` notebooks below ``directory`` that are neither excluded nor ignored."""
    listed = _git_listed_files(directory)
    if listed is None:
        listed = _walked_files(directory, excluder)
    return sorted(
        path
        for path in listed
        if path.endswith((".py", ".ipynb")) and not excluder.excluded(path) and os.path.isfile(path)
    )


def _git_listed_files(directory: str) -> list[str] | None:
    """Tracked and untracked-but-not-ignored files below ``directory``, or None outside a git work tree."""
    import subprocess  # only paid for by runs that walk a directory

    try:
        listing = subprocess.run(
            [
                "git",
                "-C",
                directory,
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
                "--",
                "*.py",
                "*.ipynb",
            ],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    names = {name for name in os.fsdecode(listing).split("\0") if name}
    return [os.path.normpath(os.path.join(directory, name)) for name in names]


def _walked_files(directory: str, excluder: Excluder) -> list[str]:
    files = []
    for parent, dirnames, filenames in os.walk(directory):
        dirnames[:] = [d for d in dirnames if not excluder.excluded(os.path.join(parent, d), is_dir=True)]
        files.extend(os.path.normpath(os.path.join(parent, name)) for name in filenames)
    return files
