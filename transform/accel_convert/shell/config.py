"""Defaults for the command line from ``[tool.accel-convert]`` in pyproject.toml (or a TOML file of its own).

The nearest pyproject.toml with such a table, searching upward from the common folder of the paths given, is used;
its folder is the project root that exclude patterns are relative to. Options given on the command line win.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass

from accel_convert.model import RULE_CODES, TARGETS

TABLE = "tool.accel-convert"
RULE_CODE = re.compile(r"[A-Z]+[0-9]*")


class ConfigError(Exception):
    """The configuration is unreadable or holds a key or value that is not allowed."""


@dataclass(frozen=True)
class Config:
    """Settings read from a file; None means "not set there"."""

    path: str | None = None
    root: str = "."
    target: str | None = None
    select: frozenset[str] | None = None
    ignore: frozenset[str] | None = None
    exclude: tuple[str, ...] | None = None
    extend_exclude: tuple[str, ...] = ()
    force_exclude: bool | None = None
    jobs: int | None = None
    per_file_ignores: tuple[tuple[str, frozenset[str]], ...] = ()


def _string(value, where):
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def _target(value, where):
    if value not in TARGETS:
        raise ConfigError(f"{where}: expected one of {', '.join(TARGETS)}, got {value!r}")
    return value


def _codes(value, where):
    if not isinstance(value, list):
        raise ConfigError(f'{where}: expected a list of rule codes such as ["AC001", "AC1"], got {value!r}')
    return parse_codes(",".join(_string(item, where) for item in value), where)


def _patterns(value, where):
    if not isinstance(value, list):
        raise ConfigError(f'{where}: expected a list of glob patterns such as ["legacy/", "*_old.py"], got {value!r}')
    return tuple(_string(item, where) for item in value)


def _bool(value, where):
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    return value


def _jobs(value, where):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: expected a positive integer, got {value!r}")
    return value


def _per_file_ignores(value, where):
    if not isinstance(value, dict):
        raise ConfigError(
            f'{where}: expected a table of patterns and rule codes such as {{"tests/**" = ["AC010"]}}, got {value!r}'
        )
    return tuple((_string(pattern, where), _codes(codes, f"{where}: {pattern!r}")) for pattern, codes in value.items())


KEYS = {
    "target": _target,
    "select": _codes,
    "ignore": _codes,
    "exclude": _patterns,
    "extend-exclude": _patterns,
    "force-exclude": _bool,
    "jobs": _jobs,
    "per-file-ignores": _per_file_ignores,
}


def parse_codes(text: str, where: str) -> frozenset[str]:
    """Rule codes or code prefixes from a comma-separated list such as ``"AC001, AC01"``; each must be the code of
    a rule or a prefix of one (``AC0`` stands for every code it starts)."""
    codes = frozenset(code.strip() for code in text.split(",") if code.strip())
    bad = sorted(code for code in codes if not RULE_CODE.fullmatch(code) or not known_code(code))
    if bad:
        raise ConfigError(
            f"{where}: {', '.join(map(repr, bad))} {'is not a rule code' if len(bad) == 1 else 'are not rule codes'};"
            f" the rules are {', '.join(RULE_CODES)} (or a prefix such as AC0 or AC01 for every code it starts)"
        )
    return codes


def known_code(code: str) -> bool:
    """True when ``code`` is a rule's code or a prefix of one."""
    return any(rule.startswith(code) for rule in RULE_CODES)


def common_base(paths: list[str]) -> str:
    """The deepest folder that contains all ``paths`` (the working directory when there are none)."""
    folders = [p if os.path.isdir(p) else os.path.dirname(p) or "." for p in map(os.path.abspath, paths)]
    return os.path.commonpath(folders) if folders else os.getcwd()


def _read_toml(path: str) -> dict:
    if sys.version_info >= (3, 11):  # imported here: a run without a pyproject.toml does not pay for it
        import tomllib
    else:
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def _table(document: dict, path: str) -> dict | None:
    tool = document.get("tool")
    table = tool.get("accel-convert") if isinstance(tool, dict) else None
    if table is not None and not isinstance(table, dict):
        raise ConfigError(f"{path}: {TABLE} must be a table, got {table!r}")
    return table


def find_config(start: str) -> str | None:
    """The nearest pyproject.toml at or above folder ``start`` that has a ``[tool.accel-convert]`` table."""
    folder = os.path.abspath(start)
    while True:
        candidate = os.path.join(folder, "pyproject.toml")
        if os.path.isfile(candidate) and _table(_read_toml(candidate), candidate) is not None:
            return candidate
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def load_config(path: str) -> Config:
    """Read the settings in ``path``: the ``[tool.accel-convert]`` table of a pyproject.toml, the top level of any
    other TOML file."""
    document = _read_toml(path)
    if os.path.basename(path) == "pyproject.toml":
        table = _table(document, path)
        if table is None:
            raise ConfigError(f"{path}: no [{TABLE}] table")
        section = f"[{TABLE}] "
    else:
        table, section = document, ""
    values = {}
    for key, value in table.items():
        if key not in KEYS:
            raise ConfigError(f"{path}: {section}unknown key {key!r} (allowed: {', '.join(KEYS)})")
        where = f"{path}: {section}{key}"
        values[key.replace("-", "_")] = KEYS[key](value, where)
    return Config(path=path, root=os.path.dirname(os.path.abspath(path)), **values)
