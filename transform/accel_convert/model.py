"""Plain data shared by the converter and everything that wraps it (CLI, tests, benchmarks)."""

from __future__ import annotations

from dataclasses import dataclass

TARGETS = ("accel", "accelerate")


@dataclass(frozen=True)
class Options:
    """What a conversion may do.

    target: the runtime the converted code imports ("accel" or Hugging Face "accelerate").
    select / ignore: rule codes (or prefixes such as "AC0") to enable / disable; ``None`` selects all.
    """

    target: str = "accel"
    select: frozenset[str] | None = None
    ignore: frozenset[str] = frozenset()

    def __post_init__(self):
        if self.target not in TARGETS:
            raise ValueError(f"unknown target {self.target!r}: expected one of {', '.join(TARGETS)}")

    def enabled(self, code: str) -> bool:
        """True when rule ``code`` runs under these options."""
        if any(code.startswith(prefix) for prefix in self.ignore):
            return False
        return self.select is None or any(code.startswith(prefix) for prefix in self.select)


@dataclass(frozen=True)
class Change:
    """One rewrite that was applied: the rule's code, the 1-based line in the input, what was done."""

    code: str
    line: int
    message: str


@dataclass(frozen=True)
class Diagnostic:
    """Something the converter noticed but did not (or could not safely) rewrite."""

    code: str
    line: int
    col: int
    message: str

    def format(self, path: str) -> str:
        return f"{path}:{self.line}:{self.col}: {self.code} {self.message}"


@dataclass(frozen=True)
class Result:
    """Output of ``convert_source``: the new text (equal to the input when nothing changed)."""

    text: str
    changes: tuple[Change, ...] = ()
    diagnostics: tuple[Diagnostic, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.changes)


@dataclass(frozen=True)
class ConvertError(Exception):
    """The input could not be converted (e.g. it does not parse); ``line``/``col`` are 1-based."""

    message: str
    line: int = 0
    col: int = 0

    def format(self, path: str) -> str:
        return f"{path}:{self.line}:{self.col}: {self.message}"

    def __str__(self) -> str:
        return self.message
