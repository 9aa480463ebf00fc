"""Training loops that make their batches by hand instead of iterating a DataLoader.

``for i in range(0, len(X), bs): xb = X[i:i + bs]`` or ``xb, yb = get_batch("train")`` in a step loop: nothing
shards such batches, so under several processes every process trains on all the data (or draws the same random
batches from the same seed). Found here so that a rule can say so; nothing is rewritten.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from accel_convert.analysis.facts import CallSite, Loop, target_names
from accel_convert.analysis.roles import MODEL, Analysis
from accel_convert.analysis.traverse import Walker


@dataclass(frozen=True)
class HandMadeBatches:
    """Where a training loop makes its batches: a slice by the loop's index, or a call of a batch function."""

    node: cst.CSTNode  # ``X[i:i + bs]`` or ``get_batch("train")``
    kind: str  # "slice" or "call"
    loop: Loop  # the loop whose iterations make the batches


def hand_made_batches(analysis: Analysis, step: CallSite) -> HandMadeBatches | None:
    """How the loops around ``step`` (an optimizer's ``step()`` call) make their batches, when none of them
    iterates a loader and the function holding them is not given batches: a slice of a tensor by a loop's index
    (``X[i:i + bs]``, ``ids[:, i:i + n]``, ``perm[i:i + bs]``) or a call (a function of this file, or a method
    named like ``get_batch``) whose result goes into the model. None when no such source is found."""
    if not step.loops or any(loop in analysis.batch_loops for loop in step.loops):
        return None
    scope = step.scope
    if any(function is scope for function, _ in analysis.batch_parameters) or _called_in_batch_loop(analysis, scope):
        return None
    for loop in reversed(step.loops):
        found = _sliced_by(loop)
        if found is not None:
            return HandMadeBatches(found, "slice", loop)
    for loop in reversed(step.loops):
        found = _batch_call(analysis, loop)
        if found is not None:
            return HandMadeBatches(found, "call", loop)
    return None


def _called_in_batch_loop(analysis: Analysis, scope) -> bool:
    """``scope`` is a function of the file called inside a loop over a loader (it may train on those batches)."""
    if scope.parent is None:
        return False
    name = scope.node.name.value
    for site in analysis.facts.calls:
        func = site.node.func
        called = func.value if isinstance(func, cst.Name) else func.attr.value if isinstance(func, cst.Attribute) else None
        if called == name and any(loop in analysis.batch_loops for loop in site.loops):
            return True
    return False


def _sliced_by(loop: Loop) -> cst.Subscript | None:
    """The first ``x[... a:b ...]`` in the loop's body whose slice bounds read the loop's target."""
    names = set(loop.target_names)
    if not names:
        return None
    found: list[cst.Subscript] = []

    class _Slices(Walker):
        def visit_Subscript(self, node: cst.Subscript) -> bool:
            for element in node.slice:
                part = element.slice
                if isinstance(part, cst.Slice):
                    bounds = [bound for bound in (part.lower, part.upper) if bound is not None]
                    if any(_reads(bound, names) for bound in bounds):
                        found.append(node)
                        return False
            return True

        def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
            return False

    walker = _Slices()
    for statement in loop.node.body.body:
        walker.walk(statement)
        if found:
            return found[0]
    return None


def _batch_call(analysis: Analysis, loop: Loop) -> cst.Call | None:
    """A call in the loop (not a nested one's) whose result the model gets: ``xb, yb = get_batch("train")`` with
    ``model(xb, yb)``, or ``model(*get_batch("train"))``; the callee is a function of this file or a method whose
    name says it makes batches."""
    facts = analysis.facts
    model_calls = [
        site.node
        for site in facts.calls
        if site.loops and site.loops[-1] is loop and analysis.role_of(site.scope, site.node.func) == MODEL
    ]
    if not model_calls:
        return None
    fed: set[str] = {read for call in model_calls for arg in call.args for read in _names(arg.value)}
    for site in facts.calls:
        if not (site.loops and site.loops[-1] is loop and _makes_batches(analysis, site.node)):
            continue
        if any(_contains(call, site.node) for call in model_calls):
            return site.node
        for assignment in facts.assignments:
            if assignment.value is site.node and fed & {n for t in assignment.targets for n in target_names(t)}:
                return site.node
    return None


def _makes_batches(analysis: Analysis, call: cst.Call) -> bool:
    func = call.func
    if isinstance(func, cst.Name):
        return func.value in analysis.facts.functions
    return isinstance(func, cst.Attribute) and "batch" in func.attr.value.lower()


def _reads(node: cst.CSTNode, names: set[str]) -> bool:
    return bool(_names(node) & names)


def _names(node: cst.CSTNode) -> set[str]:
    found: set[str] = set()

    class _Names(Walker):
        def visit_Name(self, name: cst.Name) -> None:
            found.add(name.value)

        def visit_Attribute(self, attribute: cst.Attribute) -> bool:
            self.walk(attribute.value)
            return False

    _Names().walk(node)
    return found


def _contains(node: cst.CSTNode, part: cst.CSTNode) -> bool:
    found = False

    class _Find(Walker):
        def visit_Call(self, call: cst.Call) -> bool:
            nonlocal found
            found = found or call is part
            return not found

    _Find().walk(node)
    return found
