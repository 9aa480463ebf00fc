"""``convert_source``: the pure function at the heart of accel-convert (text in, text out).

parse -> analysis -> decisions -> rules (plan, then complete) -> rewrite -> unused imports -> write.
"""

from __future__ import annotations

import ast

import libcst as cst

from accel_convert.analysis.pipeline import analyse
from accel_convert.analysis.prefilter import may_need_conversion
from accel_convert.analysis.roles import LOADER, SCHEDULER
from accel_convert.check import Violation, check
from accel_convert.decisions import PREPARE, Decisions, creation_position, decide
from accel_convert.edits.plan import Plan
from accel_convert.edits.rewrite import hot_nodes, rewrite
from accel_convert.edits.unused_imports import drop_imports, made_unused
from accel_convert.model import ConvertError, Diagnostic, Options, Result, python_syntax_error
from accel_convert.rules import RULES
from accel_convert.rules.context import Context

SETUP = "AC001"


def convert_source(text: str, options: Options = Options(), drop_unused_imports: bool = True) -> Result:
    """Rewrite one script's source; a file with nothing to convert comes back identical, with no changes.

    ``drop_unused_imports=False`` keeps the imports the conversion left unused (a joined project source drops them
    file by file instead).

    The converted text is checked against the output invariants (``check``) before it is returned: an object whose
    decision breaks one is withdrawn from the prepare and the file converted again without it; a violation that
    cannot be localised leaves the whole file as it is. Either way a diagnostic says so.

    Raises ``ConvertError`` when the text does not parse (or, as an internal error, when the result would not).
    """
    if not may_need_conversion(text):
        return Result(text)
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    source = text[len(bom):]
    module = _parse(source)
    withdrawn: dict[str, Violation] = {}
    for _ in range(_MAX_WITHDRAWALS + 1):
        plan, decisions = _plan(module, options, source, withdrawn)
        if plan.empty:
            return Result(text, (), tuple(plan.diagnostics))
        code, tree = _rebuild(module, plan, source, drop_unused_imports)
        violations = check(source, code, after_tree=tree)
        if not violations:
            return Result(bom + code, tuple(plan.changes), tuple(plan.diagnostics))
        keys = _withdrawable(decisions, violations)
        if keys is None or set(keys) <= set(withdrawn):
            break
        withdrawn.update(keys)
    return Result(text, (), tuple(_sorted([*plan.diagnostics, _declined(decisions, plan, violations[0])])))


_MAX_WITHDRAWALS = 3  # objects taken out of one prepare before the file is declined instead


def _rebuild(module: cst.Module, plan: Plan, source: str, drop_unused: bool) -> tuple[str, ast.Module]:
    """The converted text (imports it left unused dropped when ``drop_unused``) and its ``ast``."""
    converted = rewrite(module, plan)
    try:
        tree = ast.parse(converted.code)
        unused = made_unused(source, tree) if drop_unused else set()
        if unused:
            converted = drop_imports(converted, unused)
            tree = ast.parse(converted.code)
    except SyntaxError as error:
        raise ConvertError(
            f"internal error: the converted code does not parse ({error.msg}); please report this file",
            error.lineno or 0,
            error.offset or 0,
        ) from None
    return converted.code, tree


def _withdrawable(decisions: Decisions, violations) -> dict[str, Violation] | None:
    """The loaders and schedulers to take out of the prepare, each with its violation; None when a violation is not about one
    of them (not localised, another scope, a model or optimizer: the run cannot be prepared without it)."""
    preparation = decisions.preparation
    if preparation is None:
        return None
    roles = {item.key: item.role for item in preparation.objects}
    owner = decisions.owner
    owner_name = "" if owner.parent is None else (f"{owner.class_name}.{owner.name}" if owner.class_name else owner.name)
    keys = {}
    for violation in violations:
        role = roles.get(violation.binding)
        if role not in (LOADER, SCHEDULER) or violation.scope not in (None, owner_name):
            return None
        keys.setdefault(violation.binding, violation)
    return keys


def _declined(decisions: Decisions, plan: Plan, violation) -> Diagnostic:
    """The diagnostic of a file left as it is because its conversion would break an output invariant."""
    preparation = decisions.preparation
    line = next((change.line for change in plan.changes if change.code == PREPARE), 0) if preparation else 0
    message = (
        f"nothing converted: the converted script would break an invariant of the output check ({violation.message}); "
        "convert it by hand or restructure that part and run accel-convert again"
    )
    return Diagnostic(PREPARE, line or 1, 1, message)


def plan_module(module: cst.Module, options: Options = Options(), text: str | None = None) -> Plan:
    """Analyse a parsed module, decide once what the conversion does, and let each enabled rule add its edits to one
    Plan (``text``: its source)."""
    return _plan(module, options, text, {})[0]


def _plan(module: cst.Module, options: Options, text: str | None, withdrawn: dict[str, Violation]) -> tuple[Plan, Decisions | None]:
    """The plan and the decisions it follows (``withdrawn``: objects the output check took out of the prepare)."""
    plan = Plan()
    if not options.enabled(SETUP):
        return plan, None  # every other rule names the accelerator that setup creates
    analysis = analyse(module)
    if analysis.has_accelerator:
        return plan, None
    decisions = decide(analysis, options, RULES, withdrawn)
    rules = [rule for rule in RULES if options.enabled(rule.code)]
    text = module.code if text is None else text
    if not decisions.converts:
        context = Context(analysis, decisions, options)
        found = Plan()
        if decisions.no_run:
            for rule in rules:
                if rule.reports_without_run:
                    rule.plan(context, found)
        plan.diagnostics = _sorted(context.resolve([*decisions.declined, *found.diagnostics], text))
        return plan, decisions
    plan.diagnostics.extend(decisions.diagnostics)
    context = _plan_rules(decisions, options, rules, plan)
    early = _early_uses(context)
    if early:  # a rule names the accelerator before the place decided for it: create it before those uses too
        access = decisions.access
        access.position = creation_position(analysis, access, [*early, _location_of(analysis, access.position)])
        plan = Plan(diagnostics=list(decisions.diagnostics))
        context = _plan_rules(decisions, options, rules, plan)
        if _early_uses(context):
            raise ConvertError("internal error: the accelerator is used before it is created; please report this file")
    resolved = context.resolve([*plan.changes, *plan.diagnostics], text)
    plan.changes = _sorted(resolved[: len(plan.changes)])
    plan.diagnostics = _sorted(resolved[len(plan.changes) :])
    plan.hot = hot_nodes(analysis.facts, plan)
    return plan, decisions


def _plan_rules(decisions: Decisions, options: Options, rules, plan: Plan) -> Context:
    context = Context(decisions.analysis, decisions, options)
    for rule in rules:
        plan.rule = rule.code
        rule.plan(context, plan)
    for rule in rules:
        plan.rule = rule.code
        rule.complete(context, plan)
    return context


def _early_uses(context: Context) -> list:
    """Locations in the accelerator's home where the planned code names it before (or outside) its creation."""
    access = context.access
    block, index = access.position
    early = []
    for scope, location in context.uses:
        if scope is not access.home:
            continue
        inside = [position for b, position in location if b == block]
        if not inside or inside[0] < index:
            early.append(location)
    return early


def _location_of(analysis, position: tuple[int, int]):
    """The location of the statement at (block, index)."""
    block, index = position
    return analysis.facts.statement_locations[id(analysis.facts.statement_at(block, index))]


def _sorted(items: list) -> list:
    return sorted(items, key=lambda item: (item.line, item.code))


def _indented_trailing_comments(text: str) -> bool:
    """Indented comment lines after the module's last statement, which libcst does not always write back (the one
    shape known to break its round trip; checking it costs a string scan, not a second code generation)."""
    for line in reversed(text.splitlines()):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return False
        if stripped and line[0] in " \t":
            return True
    return False


def _parse(text: str) -> cst.Module:
    try:
        module = cst.parse_module(text)
    except cst.ParserSyntaxError as error:
        python = python_syntax_error(text)  # reported where Python itself reports it (libcst's position may differ)
        if python is not None:
            raise python from None
        raise ConvertError(f"syntax error: {error.message}", error.raw_line, error.raw_column + 1) from None
    if _indented_trailing_comments(text) and module.code != text:  # libcst would drop some of them
        line = next((n for n, (a, b) in enumerate(zip(text.splitlines(), module.code.splitlines()), 1) if a != b), 0)
        line = line or min(len(text.splitlines()), len(module.code.splitlines())) + 1
        raise ConvertError(
            f"cannot convert without losing text: the parser does not keep line {line} as written (indented comment "
            "lines after the file's last statement); dedent those comments or move them into a block, then run "
            "accel-convert again",
            line,
            1,
        )
    return module
