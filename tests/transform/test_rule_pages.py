"""The rule pages under docs/reference/rules are generated from the rules' docstrings and must be up to date."""

from __future__ import annotations

from pathlib import Path

from accel_convert.rules import RULES
from accel_convert.rules.pages import pages

PAGES = Path(__file__).resolve().parents[2] / "docs" / "reference" / "rules"


def test_rule_pages_are_up_to_date():
    expected = pages()
    on_disk = {path.name: path.read_text(encoding="utf-8") for path in PAGES.glob("*.md")}
    stale = sorted(name for name in expected if on_disk.get(name) != expected[name])
    extra = sorted(set(on_disk) - set(expected))
    assert not stale and not extra, (
        f"out of date: {stale}, not generated: {extra}; run `python -m accel_convert.rules.pages docs/reference/rules`"
    )


def test_rule_codes_are_unique_and_documented():
    codes = [rule.code for rule in RULES]
    assert len(set(codes)) == len(codes)
    for rule in RULES:
        doc = type(rule).__doc__
        assert doc.splitlines()[0] == rule.summary  # the summary is the docstring's first line
        assert "## Example" in doc and "becomes" in doc  # every page shows a before and an after


def test_every_page_names_the_invariants_that_guard_its_rule():
    from accel_convert.check import INVARIANTS

    guarding = set()
    for rule in RULES:
        assert set(rule.guarded_by) <= set(INVARIANTS), rule.code
        guarding |= set(rule.guarded_by)
        page = pages()[f"{rule.code}-{rule.name}.md"]
        guards = page.split("## Guarded by\n", 1)[1].split("\n## ", 1)[0]
        assert all(f"`{invariant}`: {INVARIANTS[invariant]}" in guards for invariant in rule.guarded_by)
        if not rule.guarded_by:
            assert "No invariant of the" in guards
    assert guarding == set(INVARIANTS)  # every invariant guards some rule
    prepare = next(rule for rule in RULES if rule.code == "AC002")
    assert {"unprepared-loader", "sampler-under-prepare", "prepare-arg-unbound"} <= set(prepare.guarded_by)
