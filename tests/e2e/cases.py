"""The fixture cases under fixtures/: one folder each with before.py, fixture.toml and (once converted) after.py; a
project case holds before/ and after/ trees instead, and fixture.toml names the entry script in them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tomllib

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"

# fixture.toml keys: name -> (type, default). Anything else is an error naming the file and the key.
_KEYS = {
    "description": (str, None),
    "runnable": (bool, True),
    "args": (list, []),
    "unchanged": (bool, False),
    "line_endings": (str, "lf"),
    "encoding": (str, "utf-8"),
    "issue": (int, 3),
    "untrained_args": (list, []),
    "before_launcher": (str, "python"),
    "replicas_agree": (list, []),
    "entry": (str, ""),
    "matches_torchrun": (bool, False),  # 2 processes of after print exactly what before prints under torchrun
}
_LINE_ENDINGS = ("lf", "crlf")
_ENCODINGS = ("utf-8", "utf-8-sig")
_LAUNCHERS = ("python", "torchrun")


class FixtureError(ValueError):
    """A fixture folder or its fixture.toml is malformed."""


@dataclass(frozen=True)
class Case:
    name: str
    folder: Path
    description: str
    runnable: bool
    args: tuple[str, ...]
    unchanged: bool
    line_endings: str
    encoding: str
    issue: int
    untrained_args: tuple[str, ...]
    before_launcher: str
    replicas_agree: tuple[str, ...]
    entry: str
    matches_torchrun: bool

    @property
    def project(self) -> bool:
        return bool(self.entry)

    @property
    def before(self) -> Path:
        return self.folder / "before" / self.entry if self.project else self.folder / "before.py"

    @property
    def after(self) -> Path:
        return self.folder / "after" / self.entry if self.project else self.folder / "after.py"

    def __str__(self) -> str:
        return self.name


def load_case(folder: Path) -> Case:
    """Read one fixture folder, checking fixture.toml against the keys above."""
    meta_path = folder / "fixture.toml"
    project = (folder / "before").is_dir()
    if not project and not (folder / "before.py").is_file():
        raise FixtureError(f"{folder}: no before.py (nor a before/ folder)")
    if not meta_path.is_file():
        raise FixtureError(f"{folder}: no fixture.toml (needs at least: description = \"...\")")
    with meta_path.open("rb") as handle:
        try:
            meta = tomllib.load(handle)
        except tomllib.TOMLDecodeError as error:
            raise FixtureError(f"{meta_path}: not valid TOML: {error}") from error
    values = {}
    for key, value in meta.items():
        if key not in _KEYS:
            raise FixtureError(f"{meta_path}: unknown key {key!r}; expected one of {sorted(_KEYS)}")
        expected_type = _KEYS[key][0]
        if not isinstance(value, expected_type):
            raise FixtureError(f"{meta_path}: {key} = {value!r} should be a {expected_type.__name__}")
        values[key] = value
    for key, (_, default) in _KEYS.items():
        if key not in values:
            if default is None:
                raise FixtureError(f"{meta_path}: missing required key {key!r}")
            values[key] = default
    if values["line_endings"] not in _LINE_ENDINGS:
        raise FixtureError(f"{meta_path}: line_endings = {values['line_endings']!r}; expected one of {_LINE_ENDINGS}")
    if values["encoding"] not in _ENCODINGS:
        raise FixtureError(f"{meta_path}: encoding = {values['encoding']!r}; expected one of {_ENCODINGS}")
    if values["before_launcher"] not in _LAUNCHERS:
        raise FixtureError(f"{meta_path}: before_launcher = {values['before_launcher']!r}; expected one of {_LAUNCHERS}")
    if project != bool(values["entry"]):
        raise FixtureError(f"{meta_path}: a case with a before/ folder names its entry script (entry = \"train.py\"), "
                           "and only such a case does")
    if project and not (folder / "before" / values["entry"]).is_file():
        raise FixtureError(f"{meta_path}: entry = {values['entry']!r}: no such file in {folder / 'before'}")
    for key in ("args", "untrained_args", "replicas_agree"):
        if not all(isinstance(arg, str) for arg in values[key]):
            raise FixtureError(f"{meta_path}: {key} = {values[key]!r} should be a list of strings")
        values[key] = tuple(values[key])
    return Case(name=folder.name, folder=folder, **values)


def load_cases(root: Path = FIXTURES) -> list[Case]:
    """Every fixture folder under ``root``, sorted by name."""
    return [load_case(folder) for folder in sorted(root.iterdir()) if folder.is_dir() and not folder.name.startswith((".", "_"))]
