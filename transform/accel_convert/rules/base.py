"""What a rule is: a stable code, a one-line summary, a docstring that is its documentation page, and a planner."""

from __future__ import annotations

from typing import ClassVar

from accel_convert.analysis.facts import Scope
from accel_convert.analysis.roles import Analysis
from accel_convert.edits.plan import Plan
from accel_convert.rules.context import Context


class Rule:
    code: ClassVar[str]
    name: ClassVar[str]
    summary: ClassVar[str]
    unsafe: ClassVar[bool] = False  # the rewrite may change behaviour (ruff's sense): the page says how
    # the diagnostics of this rule that are notes (they only explain a line kept on purpose: shown with -v, no
    # effect on the exit status), one phrase each for its page; every other diagnostic it reports leaves work
    notes: ClassVar[tuple[str, ...]] = ()

    def needs(self, analysis: Analysis) -> list[Scope]:
        """Scopes whose rewritten code will name the accelerator."""
        return []

    def plan(self, context: Context, plan: Plan) -> None:
        raise NotImplementedError
