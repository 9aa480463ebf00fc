"""Batch loops: which ``for`` loops iterate a loader, which names hold the batches they yield, and which parameters of
the file's functions are handed batches at every call."""

from __future__ import annotations

import libcst as cst

from accel_convert.analysis.expressions import root_name
from accel_convert.analysis.facts import CallSite, Scope, target_names
from accel_convert.analysis.imports import dotted_name
from accel_convert.analysis.roles import LOADER, MODEL, Analysis, Binding, called_function, set_role


def iterated_loaders(analysis: Analysis, scope: Scope, node: cst.BaseExpression) -> set[Binding]:
    """The loaders ``node`` iterates: ``loader``, ``enumerate(loader)``, ``zip(a, b)``; empty for anything else."""
    key = dotted_name(node)
    if key is not None and analysis.roles.get(analysis.binding(scope, key)) == LOADER:
        return {analysis.binding(scope, key)}
    found: set[Binding] = set()
    if isinstance(node, cst.Call):
        for arg in node.args:
            if arg.keyword is None and not arg.star:
                found |= iterated_loaders(analysis, scope, arg.value)
    return found


def find_batch_loops(analysis: Analysis) -> None:
    analysis.batch_loops.clear()
    analysis.batch_sources.clear()
    for loop in analysis.facts.loops:
        loaders = iterated_loaders(analysis, loop.scope, loop.node.iter) if isinstance(loop.node, cst.For) else set()
        if loaders:
            analysis.batch_loops[loop] = set(loop.target_names)
            analysis.batch_sources[loop] = loaders
    for assignment in analysis.facts.assignments:
        for loop in assignment.loops:
            names = analysis.batch_loops.get(loop)
            if names is None:
                continue
            if root_name(analysis.strip(assignment.value, assignment.scope)) in names:
                for target in assignment.targets:
                    names.update(target_names(target))


def _in_batch_loop(analysis: Analysis, site: CallSite) -> bool:
    return any(loop in analysis.batch_loops for loop in site.loops)


def find_models_called_in_loops(analysis: Analysis) -> None:
    for site in analysis.facts.calls:
        key = dotted_name(site.node.func)
        if key is None or not _in_batch_loop(analysis, site):
            continue
        binding = analysis.binding(site.scope, key)
        if binding in analysis.candidates and binding not in analysis.roles:
            set_role(analysis, binding, MODEL, analysis.creations.get(binding))


def batch_loaders(analysis: Analysis, site: CallSite, receiver: cst.BaseExpression) -> set[Binding] | None:
    """The loaders ``receiver`` comes from when it is (derived from) what a loop over a loader yields: a loop or
    comprehension target, or a parameter of a helper that every call passes such a value; None otherwise."""
    root = root_name(receiver)
    if root is None:
        return None
    sources: dict[str, set[Binding]] = {
        param: set(loaders) for (scope, param), loaders in analysis.batch_parameters.items() if scope is site.scope
    }
    for loop in site.loops:
        for name in analysis.batch_loops.get(loop, ()):
            sources.setdefault(name, set()).update(analysis.batch_sources[loop])
    for names, iterable in site.comprehensions:
        loaders = sources.get(root_name(iterable)) or iterated_loaders(analysis, site.scope, iterable)
        for name in names if loaders else ():
            sources.setdefault(name, set()).update(loaders)
    return sources.get(root)


def find_batch_parameters(analysis: Analysis) -> None:
    """Parameters of the file's functions that every call fills with a batch value."""
    passed: dict[tuple[Scope, str], set[Binding] | None] = {}
    for site in analysis.facts.calls:
        callee = called_function(analysis, site)
        if callee is None:
            continue
        function, skip = callee
        for index, arg in enumerate(site.node.args):
            if arg.star:
                break
            if arg.keyword is not None:
                name = arg.keyword.value
            elif skip + index < len(function.params):
                name = function.params[skip + index]
            else:
                continue
            key = (function, name)
            loaders = batch_loaders(analysis, site, arg.value)
            previous = passed.get(key, set())
            passed[key] = None if previous is None or loaders is None else previous | loaders
    analysis.batch_parameters = {key: loaders for key, loaders in passed.items() if loaders}

