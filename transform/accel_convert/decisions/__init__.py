"""The decision stage: what one conversion does, computed once per file before any rule plans, read by every rule.

- the training run (the scope that owns it), or the whole-file decline and why: a rule's ``declines`` (Hogwild,
  apex AMP, a model that trains itself) or no training step found (``no_run``);
- the one answer to "what is prepared" (``prepared``): empty when AC002 is deselected or the prepare comes too late,
  so no rule removes a move or gathers a metric that only a prepare would make right;
- where the accelerator lives, how each scope reaches it, and before which statement it is created (``access``).

Rules never re-derive these, never import each other, and plan in any order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from accel_convert.analysis.facts import Location, Scope
from accel_convert.analysis.roles import MODEL, PREPARED_ROLES, Analysis
from accel_convert.decisions.access import Access, locate
from accel_convert.decisions.no_run import reasons
from accel_convert.decisions.prepared import Preparation, candidates, no_model_message, place
from accel_convert.edits.placement import common_level
from accel_convert.edits.plan import Pending
from accel_convert.model import Diagnostic, Options

SETUP, PREPARE = "AC001", "AC002"


@dataclass(eq=False)
class Decisions:
    analysis: Analysis
    declined: list[Pending]  # non-empty, or no owner: the whole file is left as it is (these say why)
    owner: Scope | None = None  # the scope that owns the training run
    preparation: Preparation | None = None  # the prepare statement; None when nothing is prepared
    diagnostics: list[Pending] = field(default_factory=list)  # why there is no prepare although there are objects
    access: Access | None = None
    withdrawn: dict = field(default_factory=dict)  # key -> the output check's Violation that took it out of the prepare
    no_run: bool = False  # declined because no training run was found (not by a rule's ``declines``)

    @property
    def converts(self) -> bool:
        return self.owner is not None and not self.declined

    @property
    def prepared(self) -> set:
        """Every binding holding a prepared object (aliases, helpers' parameters, factories' returns)."""
        return self.preparation.bindings if self.preparation is not None else set()


def decide(analysis: Analysis, options: Options, rules, withdrawn: dict | None = None) -> Decisions:
    """The decisions for one file under the enabled ``rules`` (an ignored rule declines nothing, as ruff's ignore
    turns a rule off); ``withdrawn``: keys the output check took out of the prepare, each with its ``Violation``."""
    withdrawn = withdrawn or {}
    rules = [rule for rule in rules if options.enabled(rule.code)]
    declined = [pending for rule in rules for pending in rule.declines(analysis)]
    if declined:
        return Decisions(analysis, declined, withdrawn=withdrawn)
    if analysis.anchor is None:
        return Decisions(analysis, reasons(analysis), withdrawn=withdrawn, no_run=True)
    owner = analysis.anchor.scope
    decisions = Decisions(analysis, [], owner, withdrawn=withdrawn)
    objects = candidates(analysis, owner)
    if options.enabled(PREPARE) and not any(item.role == MODEL for item in objects):
        message = no_model_message(analysis, owner)
        return Decisions(analysis, [Pending(Diagnostic, PREPARE, analysis.anchor.node, message, analysis.anchor.statement)], withdrawn=withdrawn)
    for item in objects:
        if item.key in withdrawn:
            node = item.creation.statement if item.creation is not None else analysis.anchor.statement
            decisions.diagnostics.append(Pending(Diagnostic, PREPARE, node, _withdrawal(item.key, withdrawn[item.key]), None))
    objects = [item for item in objects if item.key not in withdrawn]
    if objects and not options.enabled(PREPARE):
        message = (
            f"{PREPARE} is not selected, so nothing is passed through `accelerator.prepare` and nothing that depends on "
            "it is converted (device moves, `backward`, gathers stay as they are): under several processes every "
            "process would train alone on all the data"
        )
        decisions.diagnostics.append(Pending(Diagnostic, SETUP, analysis.anchor.node, message, analysis.anchor.statement))
    elif objects:
        preparation = place(analysis, owner, objects)
        if preparation.late is not None:
            used, loop, what, last = preparation.late
            message = (
                f"`accelerator.prepare` not added: {what} `{used}` before `{last}` (the last object "
                f"prepare takes) is created, so the prepare would come after it; create `{last}` before this "
                f"{'call' if isinstance(loop, cst.Call) else 'loop'} to convert the script (every device move, "
                "`backward` and metric is left as it is)"
            )
            decisions.diagnostics.append(Pending(Diagnostic, PREPARE, loop, message, None))
        else:
            decisions.preparation = preparation
    needs = [need for rule in rules for need in rule.needs(decisions)]
    access = locate(analysis, owner, [scope for scope, _ in needs])
    uses = [location for scope, location in needs if scope is access.home]
    uses += [site.location for site, _ in access.call_sites if site.scope is access.home]
    if decisions.preparation is not None and owner is access.home:
        uses.append(decisions.preparation.location)
    if access.home is not owner and access.home.parent is not None:
        # the owner reads the accelerator the home creates (``__init__`` for a method's run): the home creates it
        # on every path, at the level of its own body
        uses = [_at_body_level(access.home, location) for location in uses]
    access.position = creation_position(analysis, access, uses)
    decisions.access = access
    return decisions


def _at_body_level(scope, location):
    """``location`` cut at the statement of ``scope``'s own body that holds it."""
    for depth, (block, _) in enumerate(location):
        if block == scope.body_block:
            return location[: depth + 1]
    return location


def _outside_classes(analysis: Analysis, home: Scope, location: Location) -> Location:
    """``location`` (in ``home``) cut at the first class statement of ``home``'s body that holds it: the
    accelerator is never created in a class body."""
    start = next((depth for depth, (block, _) in enumerate(location) if block == home.body_block), len(location))
    for depth in range(start, len(location)):
        block, index = location[depth]
        if isinstance(analysis.facts.statement_at(block, index), cst.ClassDef):
            return location[: depth + 1]
    return location


def _withdrawal(key: str, violation) -> str:
    """Why ``key`` is not prepared (the output check's violation) and what that leaves."""
    if violation.invariant == "sampler-under-prepare":
        left = (
            "it keeps its own `DistributedSampler`, which gives each process its share as the original's distributed "
            "run did (sums and counts over its batches cover this process's share), and its device moves are kept"
        )
    elif violation.invariant == "prepare-arg-unbound":
        left = "its device moves are kept, and where it is made it yields all of its batches, as in the original"
    else:
        left = "its device moves are kept, and every process goes through all of its batches"
    return f"`{key}` not passed through `accelerator.prepare` (output check, {violation.message}); {left}"


def creation_position(analysis: Analysis, access: Access, uses: list[Location]) -> tuple[int, int]:
    """(block, statement index) in the accelerator's home before which it is created: before the first device
    definition, use of the accelerator, device flag or prepared object of that scope."""
    home = access.home
    locations = [d.location for d in analysis.device_definitions if d.scope is home]
    locations += uses
    if not any(d.scope is home for d in analysis.device_definitions):
        locations += [flag.assignment.location for flag in analysis.flags if flag.assignment.scope is home]
        locations += [
            assignment.location
            for binding, assignment in analysis.creations.items()
            if assignment.scope is home and analysis.roles.get(binding) in PREPARED_ROLES
        ]
    # a device defined in a class body (``class Args: device = ...``) counts at the class statement
    locations = [_outside_classes(analysis, home, location) for location in locations]
    _, block_id, indices = common_level(locations)
    return block_id, min(indices)
