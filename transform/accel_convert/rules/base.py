"""What a rule is: a stable code, a one-line summary, a docstring that is its documentation page, and a planner.

Every rule reads the decision stage (``context.decisions``) and writes edits to the Plan; no rule reads another's
edits or depends on the order rules plan in.
"""

from __future__ import annotations

from typing import ClassVar

from accel_convert.analysis.facts import Location, Scope
from accel_convert.analysis.roles import Analysis
from accel_convert.edits.plan import Pending, Plan
from accel_convert.rules.context import Context


class Rule:
    code: ClassVar[str]
    name: ClassVar[str]
    summary: ClassVar[str]
    unsafe: ClassVar[bool] = False  # the rewrite may change behaviour (ruff's sense): the page says how
    reports_without_run: ClassVar[bool] = False  # plans (diagnostics only) also when the file has no training run
    # the diagnostics of this rule that are notes (they only explain a line kept on purpose: shown with -v, no
    # effect on the exit status), one phrase each for its page; every other diagnostic it reports leaves work
    notes: ClassVar[tuple[str, ...]] = ()
    # the output check's invariants (accel_convert.check.INVARIANTS) that catch a wrong edit of this rule before
    # anything is written; empty: none applies (the rule places no object on a device and prepares nothing)
    guarded_by: ClassVar[tuple[str, ...]] = ()

    def declines(self, analysis: Analysis) -> list[Pending]:
        """Diagnostics that leave the whole file as it is (empty: this rule does not decline it)."""
        return []

    def needs(self, decisions) -> list[tuple[Scope, Location]]:
        """Where this rule's rewritten code will name the accelerator (scope, location), from the decisions so far
        (the training run's owner and what is prepared)."""
        return []

    def plan(self, context: Context, plan: Plan) -> None:
        """Add this rule's edits, changes and diagnostics to ``plan`` (a rule that only declines adds none)."""

    def complete(self, context: Context, plan: Plan) -> None:
        """Runs once every rule has planned; reads only what the plan holds (the statements it removes)."""
