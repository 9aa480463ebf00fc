"""``convert_source``: the pure function at the heart of accel-convert (text in, text out)."""

from __future__ import annotations

import ast

import libcst as cst

from accel_convert.analysis.prefilter import may_need_conversion
from accel_convert.analysis.roles import analyse
from accel_convert.decisions.access import locate
from accel_convert.edits.plan import Plan
from accel_convert.edits.rewrite import hot_nodes, rewrite
from accel_convert.edits.unused_imports import drop_imports, made_unused
from accel_convert.model import ConvertError, Options, Result, python_syntax_error
from accel_convert.rules import PLANNING_ORDER
from accel_convert.rules.context import Context
from accel_convert.rules.prepare import prepared_bindings, self_training_models
from accel_convert.rules.unconverted_patterns import UnconvertedPatterns, apex_amp

SETUP = "AC001"


def convert_source(text: str, options: Options = Options()) -> Result:
    """Rewrite one script's source; a file with nothing to convert comes back identical, with no changes.

    Raises ``ConvertError`` when the text does not parse (or, as an internal error, when the result would not).
    """
    if not may_need_conversion(text):
        return Result(text)
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    module = _parse(text[len(bom):])
    plan = plan_module(module, options, text[len(bom):])
    if plan.empty:
        return Result(text, (), tuple(plan.diagnostics))
    converted = rewrite(module, plan)
    try:
        tree = ast.parse(converted.code)
        unused = made_unused(text[len(bom):], tree)
        if unused:
            converted = drop_imports(converted, unused)
            ast.parse(converted.code)
    except SyntaxError as error:
        raise ConvertError(
            f"internal error: the converted code does not parse ({error.msg}); please report this file",
            error.lineno or 0,
            error.offset or 0,
        ) from None
    return Result(bom + converted.code, tuple(plan.changes), tuple(plan.diagnostics))


def _report_unrecognised_loop(analysis, plan: Plan, text: str | None) -> None:
    """``.backward()`` and ``.step()`` in loops, but no ``torch.optim`` optimizer of this file stepped in one
    (e.g. ``optimizer = model.configure_optimizers()``): say why nothing changed."""
    site = next((site for site in analysis.backward_calls if site.loops), None)
    steps_in_loops = any(
        site.loops and isinstance(site.node.func, cst.Attribute) and site.node.func.attr.value == "step"
        for site in analysis.facts.calls
    )
    if site is None or not steps_in_loops:
        return  # no optimizer-like step in a loop: gradient checks and the like, not a training loop
    message = (
        "training loop not recognised (no `torch.optim` optimizer created in this file is stepped in a loop); "
        "nothing converted"
    )
    context = Context(analysis, None, Options())
    plan.diagnostics = context.resolve([context.diagnostic(SETUP, site.node, message)], text or analysis.facts.module.code)


def _parse(text: str) -> cst.Module:
    try:
        return cst.parse_module(text)
    except cst.ParserSyntaxError as error:
        python = python_syntax_error(text)  # reported where Python itself reports it (libcst's position may differ)
        if python is not None:
            raise python from None
        raise ConvertError(f"syntax error: {error.message}", error.raw_line, error.raw_column + 1) from None


def _report_hidden_training(analysis, plan: Plan, options: Options, text: str | None) -> None:
    """Without a training run, AC021 still names an optimizer wrapper or a helper's backward that may have hidden it."""
    rule = UnconvertedPatterns()
    if not options.enabled(rule.code):
        return
    context = Context(analysis, None, options)
    found = Plan()
    rule.plan(context, found)
    resolved = context.resolve(found.diagnostics, text or analysis.facts.module.code)
    plan.diagnostics = sorted([*plan.diagnostics, *resolved], key=lambda item: (item.line, item.code))


def plan_module(module: cst.Module, options: Options = Options(), text: str | None = None) -> Plan:
    """Analyse a parsed module and let each enabled rule add its edits to one Plan (``text``: its source)."""
    plan = Plan()
    if not options.enabled(SETUP):
        return plan  # every other rule names the accelerator that setup creates
    analysis = analyse(module)
    if analysis.has_accelerator:
        return plan
    context = Context(analysis, None, options)
    declined = [*apex_amp(context), *self_training_models(context)]  # each leaves the whole file as it is
    if declined:
        plan.diagnostics = sorted(context.resolve(declined, text or module.code), key=lambda item: item.line)
        return plan
    if analysis.anchor is None:
        _report_unrecognised_loop(analysis, plan, text)
        _report_hidden_training(analysis, plan, options, text)
        return plan
    analysis.prepared = prepared_bindings(analysis)
    rules = [rule for rule in PLANNING_ORDER if options.enabled(rule.code)]
    access = locate(analysis, [scope for rule in rules for scope in rule.needs(analysis)])
    context = Context(analysis, access, options)
    for rule in rules:
        rule.plan(context, plan)
    key = lambda item: (item.line, item.code)  # noqa: E731
    resolved = context.resolve([*plan.changes, *plan.diagnostics], module.code if text is None else text)
    plan.changes = sorted(resolved[: len(plan.changes)], key=key)
    plan.diagnostics = sorted(resolved[len(plan.changes) :], key=key)
    plan.hot = hot_nodes(analysis.facts, plan)
    return plan
