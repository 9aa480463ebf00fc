"""Documentation pages of the rules, generated from each rule's docstring (like ruff's rule pages).

``python -m accel_convert.rules.pages DIR`` writes ``DIR/index.md`` and one page per rule; a test fails when the
committed pages differ from what this produces.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

from accel_convert.check import INVARIANTS
from accel_convert.rules import RULES, Rule

_HEADER = "<!-- Generated from the rule's docstring by `python -m accel_convert.rules.pages`; do not edit. -->\n"


def page_name(rule: Rule) -> str:
    return f"{rule.code}-{rule.name}.md"


def render_page(rule: Rule) -> str:
    """One rule's page: code and name, then its docstring (summary first), then its fix safety."""
    text = inspect.cleandoc(type(rule).__doc__)
    safety = (
        "**Fix safety:** unsafe — the rewrite can change what the script computes under several processes; review it."
        if rule.unsafe
        else "**Fix safety:** safe — one process computes the same numbers as the original script."
    )
    return (
        f"{_HEADER}# {rule.code} {rule.name}\n\n{text}\n\n## Severity\n{render_severity(rule)}\n\n"
        f"## Guarded by\n{render_guards(rule)}\n\n## Fix safety\n{safety}\n"
    )


def render_guards(rule: Rule) -> str:
    """The output check's invariants that catch a wrong edit of ``rule`` before anything is written."""
    check = "[output check](../../concepts/conversion-pipeline.md#the-output-check)"
    if not rule.guarded_by:
        return (
            f"No invariant of the {check} applies: {rule.code} places no object on a device and prepares nothing. Its "
            "output is still parsed again, and converting it a second time must change nothing."
        )
    items = "\n".join(f"- `{invariant}`: {INVARIANTS[invariant]}" for invariant in rule.guarded_by)
    return (
        f"The {check} verifies these invariants on the converted file before anything is written; a conversion that "
        "breaks one is withdrawn (the object concerned is left unprepared with its moves, or the file is left as it "
        f"was) and reported:\n\n{items}"
    )


def render_severity(rule: Rule) -> str:
    """Which diagnostics of ``rule`` leave work (exit status 1) and which are notes (``-v`` only), from its ``notes``."""
    work = (
        f"leaves work for you: `accel-convert` (in place, `--check`, `--diff` or `-`) exits with status 1 until you act "
        f"on it or silence it with `# accel-convert: ignore[{rule.code}]` on its line (or `per-file-ignores`)."
    )
    if not rule.notes:
        return f"Every diagnostic of {rule.code} {work}"
    notes = "\n".join(f"- {note}" for note in rule.notes)
    return (
        f"These diagnostics of {rule.code} are **notes**: they only explain a line kept on purpose, are shown with "
        f"`-v`, and do not change the exit status:\n\n{notes}\n\nEvery other diagnostic of {rule.code} {work}"
    )


def render_index() -> str:
    rows = "\n".join(f"| [{r.code}]({page_name(r)}) | {r.name} | {r.summary} |" for r in RULES)
    return (
        f"{_HEADER}# Rules\n\n"
        "Each rule has a stable code; select or ignore rules by code or prefix "
        "(`--select AC001,AC004`, `--ignore AC003`). Every other rule uses the accelerator that AC001 creates, "
        "so they run only when AC001 does.\n\n"
        "| Code | Name | What it does |\n|---|---|---|\n"
        f"{rows}\n"
    )


def pages() -> dict[str, str]:
    """File name -> content of every page."""
    return {"index.md": render_index(), **{page_name(rule): render_page(rule) for rule in RULES}}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m accel_convert.rules.pages DIRECTORY", file=sys.stderr)
        return 2
    directory = Path(argv[0])
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in pages().items():
        (directory / name).write_text(content, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
