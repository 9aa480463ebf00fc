"""Model forwards that run on the main process only: a call of a model (or of a function of the file that calls
one) inside ``if master_process:`` or ``if rank == 0:``. With DDP that works; a sharded model (FSDP, DeepSpeed
ZeRO-3) gathers its parameters from every process in each forward, so the other processes never join and the job
hangs."""

from __future__ import annotations

import libcst as cst

from accel_convert.analysis.facts import CallSite
from accel_convert.analysis.imports import dotted_name
from accel_convert.analysis.ranks import main_process_names, rank_zero_guards
from accel_convert.analysis.roles import MODEL, Analysis


def main_only_forwards(analysis: Analysis) -> list[tuple[CallSite, cst.If, str]]:
    """(the call, the guarding ``if``, the model it runs) for each model forward under a main-process guard."""
    models = {binding for binding, role in analysis.roles.items() if role == MODEL}
    if not models:
        return []
    guards = _main_process_ifs(analysis)
    if not guards:
        return []
    runs = _functions_running(analysis, models)
    found = []
    for site in analysis.facts.calls:
        key = dotted_name(site.node.func)
        if key is None:
            continue
        model = key if analysis.binding(site.scope, key) in models else None
        if model is None and isinstance(site.node.func, cst.Name):
            model = runs.get(site.node.func.value)
        if model is None:
            continue
        blocks = {block for block, _ in site.location}
        guard = next((node for node in guards if isinstance(node.body, cst.IndentedBlock) and id(node.body) in blocks), None)
        if guard is not None:
            found.append((site, guard, model))
    return found


def _main_process_ifs(analysis: Analysis) -> list[cst.If]:
    names = main_process_names(analysis)
    guarded = {id(statement) for _, _, _, _, statement in rank_zero_guards(analysis)}
    ifs = []
    for statement, scope, _ in analysis.facts.if_statements:
        if id(statement) in guarded or any(analysis.binding(scope, key) in names for key in _conjuncts(statement.test)):
            ifs.append(statement)
    return ifs


def _conjuncts(test: cst.BaseExpression) -> list[str]:
    """The plain names and attributes ``and``-ed together in ``test`` (``step % n == 0 and master_process``)."""
    if isinstance(test, cst.BooleanOperation) and isinstance(test.operator, cst.And):
        return _conjuncts(test.left) + _conjuncts(test.right)
    key = dotted_name(test)
    return [key] if key is not None else []


def _functions_running(analysis: Analysis, models: set) -> dict[str, str]:
    """Functions of the file that call a model themselves (``estimate_loss`` calling ``model(X, Y)``): name -> model."""
    runs = {}
    for site in analysis.facts.calls:
        scope = site.scope
        key = dotted_name(site.node.func)
        if scope.parent is None or scope.class_name is not None or key is None:
            continue
        if analysis.binding(scope, key) in models and analysis.facts.functions.get(scope.name) is scope:
            runs.setdefault(scope.name, key)
    return runs
