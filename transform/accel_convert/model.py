"""Plain data shared by the converter and everything that wraps it (CLI, tests, benchmarks)."""

from __future__ import annotations

from dataclasses import dataclass

TARGETS = ("accel", "accelerate")

# The codes of the rules, in ``accel_convert.rules.RULES`` order (a test keeps the two equal). Kept here as data so
# that the command line validates ``--select AC004`` without importing the rules, and libcst with them.
RULE_CODES = (
    "AC001",
    "AC002",
    "AC003",
    "AC004",
    "AC010",
    "AC011",
    "AC012",
    "AC013",
    "AC014",
    "AC015",
    "AC016",
    "AC017",
    "AC018",
    "AC019",
    "AC020",
    "AC021",
)
SETUP_CODE = "AC001"  # the rule that creates the accelerator every other rule names

# Diagnostic severities: "work" leaves something for the user to do (the command exits 1 until it is done or
# silenced); "note" only explains a line the converter kept on purpose (shown with -v, exit status unchanged).
WORK = "work"
NOTE = "note"
SEVERITIES = (WORK, NOTE)


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
    """Something the converter noticed but did not (or could not safely) rewrite.

    ``severity`` is ``WORK`` (the default: it leaves something for the user to do) or ``NOTE`` (it only explains a
    line kept on purpose, e.g. a device move kept because its loader is not prepared)."""

    code: str
    line: int
    col: int
    message: str
    severity: str = WORK

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}: expected one of {', '.join(SEVERITIES)}")

    @property
    def is_note(self) -> bool:
        return self.severity == NOTE

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


def python_syntax_error(text: str) -> ConvertError | None:
    """``text``'s first syntax error where Python's own parser reports it (its line, column and message), or None
    when Python parses it."""
    try:
        compile(text.removeprefix("\ufeff"), "<source>", "exec", 0x400, dont_inherit=True)  # 0x400: ast.PyCF_ONLY_AST
    except SyntaxError as error:
        return ConvertError(f"syntax error: {error.msg}", error.lineno or 0, error.offset or 0)
    except ValueError as error:  # "source code string cannot contain null bytes" before Python 3.12
        return ConvertError(f"syntax error: {error}", 0, 0)
    return None
