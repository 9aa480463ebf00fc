"""Parsers for launcher settings: one per kind of value, shared by command-line flags and the config file.

Each parser takes the raw value (a string from the command line, or whatever YAML produced) and returns the
canonical value, or raises `InvalidValue` whose message says what is allowed.
"""

from __future__ import annotations

from pathlib import Path


class InvalidValue(ValueError):
    """The value is not allowed; the message says what is."""


def positive_int(raw) -> int:
    return _int_at_least(raw, 1, "an integer >= 1")


def non_negative_int(raw) -> int:
    return _int_at_least(raw, 0, "an integer >= 0")


def port(raw) -> int:
    value = _int_at_least(raw, 1, "a port number from 1 to 65535")
    if value > 65535:
        raise InvalidValue("a port number from 1 to 65535")
    return value


def zero_stage(raw) -> int:
    value = _int_at_least(raw, 0, "one of 0, 1, 2, 3")
    if value > 3:
        raise InvalidValue("one of 0, 1, 2, 3")
    return value


def positive_float(raw) -> float:
    if isinstance(raw, bool):
        raise InvalidValue("a number > 0")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise InvalidValue("a number > 0") from None
    if not value > 0 or value == float("inf"):
        raise InvalidValue("a number > 0")
    return value


_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def boolean(raw) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidValue("true or false (also yes/no, 1/0)")


def choice(*allowed: str, aliases: dict[str, str] | None = None):
    """A parser accepting `allowed` (case-insensitive) and `aliases` (other spellings, e.g. Accelerate's)."""
    spellings = {name.lower(): name for name in allowed}
    spellings.update({alias.lower(): name for alias, name in (aliases or {}).items()})
    expected = "one of " + ", ".join(allowed)
    if aliases:
        expected += " (or " + ", ".join(aliases) + ")"

    def parse(raw) -> str:
        if isinstance(raw, str) and raw.strip().lower() in spellings:
            return spellings[raw.strip().lower()]
        raise InvalidValue(expected)

    return parse


_PRECISIONS = choice("no", "fp16", "bf16")


def mixed_precision(raw) -> str:
    # YAML 1.1 reads an unquoted `no` as false: that still means "no mixed precision".
    if raw is False or raw is None:
        return "no"
    return _PRECISIONS(raw)


def gpu_ids(raw) -> tuple[int, ...] | None:
    """`all` (None: every GPU) or a comma-separated list of distinct GPU indices such as `0,1`."""
    expected = "`all` or a comma-separated list of distinct GPU indices such as 0,1"
    if isinstance(raw, bool):
        raise InvalidValue(expected)
    if isinstance(raw, int):
        raw = str(raw)
    if isinstance(raw, (list, tuple)):
        raw = ",".join(str(item) for item in raw)
    if not isinstance(raw, str):
        raise InvalidValue(expected)
    if raw.strip().lower() == "all":
        return None
    parts = [part.strip() for part in raw.split(",")]
    if not all(part.isdigit() for part in parts) or len(set(parts)) != len(parts):
        raise InvalidValue(expected)
    return tuple(int(part) for part in parts)


def class_names(raw) -> tuple[str, ...]:
    """Comma-separated Python class names (`Block,Layer`), or a YAML list of them."""
    expected = "comma-separated class names such as Block,DecoderLayer"
    items = raw if isinstance(raw, (list, tuple)) else str(raw).split(",") if isinstance(raw, str) else None
    if items is None:
        raise InvalidValue(expected)
    names = tuple(str(item).strip() for item in items)
    if not names or not all(name.isidentifier() for name in names):
        raise InvalidValue(expected)
    return names


def host(raw) -> str:
    text = str(raw).strip() if isinstance(raw, (str, int)) and not isinstance(raw, bool) else ""
    if not text or any(char.isspace() for char in text):
        raise InvalidValue("a host name or IP address")
    return text


def existing_file(raw) -> str:
    if not isinstance(raw, str) or not Path(raw).expanduser().is_file():
        raise InvalidValue("the path of an existing file")
    return str(Path(raw).expanduser().resolve())


def _int_at_least(raw, minimum: int, expected: str) -> int:
    if isinstance(raw, bool) or isinstance(raw, float) and not raw.is_integer():
        raise InvalidValue(expected)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise InvalidValue(expected) from None
    if value < minimum:
        raise InvalidValue(expected)
    return value
