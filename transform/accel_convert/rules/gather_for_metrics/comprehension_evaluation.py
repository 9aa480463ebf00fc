"""Evaluations written as comprehensions over a prepared data loader: ``sum(... for x, y in loader)``, ``[model(x) for
x, _ in loader]``, and the comprehensions of targets beside them (``torch.cat([y for _, y in loader])``).

Such a comprehension runs once per batch of this process, like a loop. Its element is evaluated once per batch, so a
gather placed in it runs the same number of times on every process. This module finds, in each one, the model
outputs in the element (``model(x)``, ``model(x).argmax(1)``) and the batch values the element reads beside them,
and what makes a gather unsafe (a filter ``if``, several ``for`` clauses, a model call under a condition).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from accel_convert.analysis.facts import Location, Scope, target_names
from accel_convert.analysis.roles import Analysis, connected
from accel_convert.analysis.traverse import code_fields
from accel_convert.rules.gather_for_metrics.batch_means import batch_mean_loss, without_scalar_methods
from accel_convert.rules.gather_for_metrics.evaluation import (
    is_model_call,
    loader_binding,
    model_output,
    prepared,
    training_loaders,
    without_gradients,
)
from accel_convert.rules.gather_for_metrics.metric_fit import free_name
from accel_convert.rules.gather_for_metrics.metric_flow import names_read

Comprehension = cst.ListComp | cst.SetComp | cst.GeneratorExp | cst.DictComp
_COMPREHENSIONS = (cst.ListComp, cst.SetComp, cst.GeneratorExp, cst.DictComp)
_GATHERS = frozenset({"gather_for_metrics", "gather", "reduce", "all_gather", "all_reduce"})
# Code under these runs for some batches only (or later, or per element): a gather in it could run a different
# number of times on each process.
_CONDITIONAL = (cst.IfExp, cst.BooleanOperation, cst.Lambda, *_COMPREHENSIONS)


@dataclass(eq=False)
class ComprehensionEvaluation:
    node: Comprehension
    scope: Scope
    statement: cst.CSTNode  # the statement holding the comprehension
    location: Location
    outputs: list[cst.BaseExpression] = field(default_factory=list)  # model outputs in the element, source order
    output_names: list[str] = field(default_factory=list)  # the names the gather binds to them
    batch_names: list[str] = field(default_factory=list)  # batch values the element reads outside the outputs
    reads: dict[str, int] = field(default_factory=dict)  # how often the element reads each batch value
    mean_loss: bool = False  # the element is a loss averaged over the batch
    loader: tuple | None = None  # the binding of the loader it iterates
    problem: str | None = None
    problem_node: cst.CSTNode | None = None

    @property
    def in_place(self) -> bool:
        """One value, read once, to gather: it is wrapped where it stands, no extra ``for`` clause needed."""
        if self.outputs:
            return len(self.outputs) == 1 and not self.batch_names
        return len(self.batch_names) == 1 and self.reads[self.batch_names[0]] == 1

    def set_problem(self, problem: str, node: cst.CSTNode) -> ComprehensionEvaluation:
        self.problem, self.problem_node = problem, node
        return self


def comprehension_evaluations(analysis: Analysis, prepared_bindings: set) -> list[ComprehensionEvaluation]:
    """Comprehensions over prepared loaders which evaluate the model, and those that only read the
    batches of a loader such a comprehension evaluates (the targets collected beside the predictions)."""
    found: list[ComprehensionEvaluation] = []
    seen: set[int] = set()
    trained: set | None = None
    for site in analysis.facts.calls:
        if not site.comprehensions or site.statement is None or not is_model_call(analysis, site.scope, site.node):
            continue
        location = analysis.facts.statement_locations.get(id(site.statement))
        for node in _comprehensions(site.statement):
            if id(node) in seen or not _contains(node, site.node):
                continue
            seen.add(id(node))
            binding = loader_binding(analysis, site.scope, node.for_in.iter)
            if binding is None or not prepared(analysis, prepared_bindings, binding) or _already_gathered(node):
                continue
            if trained is None:
                trained = training_loaders(analysis)
            if not _evaluates(analysis, site.scope, location, site.statement, binding, trained):
                continue
            found.append(_describe(analysis, node, site.scope, site.statement, location, binding))
    found += _target_comprehensions(analysis, found)
    return found


def _evaluates(analysis, scope, location, statement, binding, trained) -> bool:
    """No backward or step in its statement, and no gradients, or a loader that no training loop iterates in a
    function whose only ``backward()`` calls are in loops over batches (``loss = sum(...); loss.backward()``
    trains on the comprehension)."""
    if _calls_method(statement, {"backward", "step"}):
        return False
    if without_gradients(analysis, scope, location):
        return True
    if connected(analysis, binding, upstream=True) & trained:
        return False
    return not any(
        site.scope is scope
        and isinstance(site.node.func, cst.Attribute)
        and site.node.func.attr.value == "backward"
        and not any(loop in analysis.batch_loops for loop in site.loops)
        for site in analysis.facts.calls
    )


def _target_comprehensions(
    analysis: Analysis, evaluations: list[ComprehensionEvaluation]
) -> list[ComprehensionEvaluation]:
    """Comprehensions without a model call over the loader of a gathered evaluation, in the same function."""
    gathered = [e for e in evaluations if e.problem is None]
    if not gathered:
        return []
    seen = {id(e.node) for e in evaluations}
    scopes = {scope.body_block: scope for scope in analysis.facts.scopes}
    found = []
    for location in analysis.facts.statement_locations.values():
        statement = analysis.facts.statement_at(*location[-1])
        innermost = next((scopes[block] for block, _ in reversed(location) if block in scopes), None)
        for evaluation in gathered:
            if innermost is not evaluation.scope:
                continue
            for node in _comprehensions(statement):
                if id(node) in seen or _already_gathered(node):
                    continue
                if loader_binding(analysis, evaluation.scope, node.for_in.iter) != evaluation.loader:
                    continue
                seen.add(id(node))
                described = _describe(analysis, node, evaluation.scope, statement, location, evaluation.loader)
                if described.batch_names or described.problem is not None:
                    found.append(described)
    return found


def _describe(analysis, node: Comprehension, scope: Scope, statement, location, loader) -> ComprehensionEvaluation:
    found = ComprehensionEvaluation(node, scope, statement, location, loader=loader)
    clause = node.for_in
    if clause.inner_for_in is not None:
        return found.set_problem("has more than one `for` clause; write it as a `for` loop", node)
    if clause.ifs:
        return found.set_problem(
            "filters batches with `if`, so processes would gather a different number of times; gather the "
            "per-batch values with accelerator.gather_for_metrics before filtering them",
            clause.ifs[0].test,
        )
    elements = [node.key, node.value] if isinstance(node, cst.DictComp) else [node.elt]
    batch, index = _batch_targets(clause)
    reader = _Element(analysis, scope, batch)
    for element in elements:
        reader.walk(element)
    if reader.problem is not None:
        return found.set_problem(*reader.problem)
    if index is not None and index in reader.names:
        return found.set_problem(
            f"reads `{index}`, the index of this process's batch; gather what the metric needs in a `for` loop",
            node,
        )
    found.outputs = reader.outputs
    found.batch_names = [name for name in batch if name in reader.names]
    found.reads = {name: reader.names.count(name) for name in found.batch_names}
    taken = {name.value for name in names_read(node)} | set(target_names(clause.target))
    for number, _ in enumerate(found.outputs, 1):
        name = free_name(scope, "outputs" if number == 1 else f"outputs{number}")
        while name in taken:
            name += "_"
        found.output_names.append(name)
    value = without_scalar_methods(elements[-1])
    found.mean_loss = bool(found.outputs) and batch_mean_loss(analysis, scope, [], value)
    return found


class _Element:
    """Finds the model outputs in a comprehension's element and the names it reads beside them."""

    def __init__(self, analysis: Analysis, scope: Scope, batch: list[str]) -> None:
        self.analysis, self.scope, self.batch = analysis, scope, set(batch)
        self.outputs: list[cst.BaseExpression] = []
        self.names: list[str] = []  # every read outside the outputs, repeats kept
        self.problem: tuple[str, cst.CSTNode] | None = None
        self.conditional = 0

    def walk(self, node: cst.CSTNode) -> None:
        if self.problem is not None:
            return
        if isinstance(node, cst.BaseExpression) and model_output(self.analysis, self.scope, node):
            self._output(node)
            return
        if isinstance(node, cst.NamedExpr):
            self.problem = ("assigns with `:=`; write it as a `for` loop", node)
            return
        if isinstance(node, cst.Name):
            self.names.append(node.value)
        conditional = isinstance(node, _CONDITIONAL)
        self.conditional += conditional
        for child in _children(node):
            self.walk(child)
        self.conditional -= conditional

    def _output(self, node: cst.BaseExpression) -> None:
        if self.conditional:
            self.problem = (
                "calls the model under a condition (`if`/`and`/`or`/lambda/inner comprehension), so a gather "
                "there could run a different number of times on each process; gather in a `for` loop",
                node,
            )
            return
        calls = [n for n in _nodes(node) if isinstance(n, cst.Call) and is_model_call(self.analysis, self.scope, n)]
        inside = {id(n) for call in calls for arg in call.args for n in _nodes(arg)}
        beside = {n.value for n in _nodes(node) if isinstance(n, cst.Name) and id(n) not in inside}
        if beside & self.batch:
            name = min(beside & self.batch)
            self.problem = (
                f"indexes or reshapes the model's output with `{name}` of this process's batch; gather the output "
                "and the batch first",
                node,
            )
            return
        self.outputs.append(node)


def _batch_targets(clause: cst.CompFor) -> tuple[list[str], str | None]:
    """The names a ``for`` clause binds to the batch, and the index name of ``enumerate(loader)``."""
    iterable, target = clause.iter, clause.target
    if isinstance(iterable, cst.Call) and isinstance(iterable.func, cst.Name) and iterable.func.value == "enumerate":
        if isinstance(target, (cst.Tuple, cst.List)) and len(target.elements) == 2:
            index = target_names(target.elements[0].value)
            return target_names(target.elements[1].value), index[0] if index else None
        return [], None
    return target_names(target), None


def _children(node: cst.CSTNode) -> list[cst.CSTNode]:
    """The code nodes directly under ``node`` (an attribute's name is not a variable: left out)."""
    if isinstance(node, cst.Attribute):
        return [node.value]
    found: list[cst.CSTNode] = []
    for name in code_fields(type(node)):
        value = getattr(node, name)
        for item in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(item, cst.CSTNode):
                found.append(item)
    return found


def _nodes(node: cst.CSTNode) -> list[cst.CSTNode]:
    """``node`` and every code node under it."""
    found = [node]
    for child in _children(node):
        found += _nodes(child)
    return found


def _comprehensions(statement: cst.CSTNode) -> list[Comprehension]:
    """The comprehensions in a simple statement, or in the header of a compound one."""
    parts = [statement]
    if not isinstance(statement, cst.SimpleStatementLine):
        parts = [getattr(statement, name) for name in ("test", "iter", "items") if hasattr(statement, name)]
    found: list[Comprehension] = []
    for part in parts:
        for item in part if isinstance(part, (list, tuple)) else [part]:
            if isinstance(item, cst.CSTNode):
                found += [n for n in _nodes(item) if isinstance(n, _COMPREHENSIONS)]
    return found


def _contains(node: cst.CSTNode, part: cst.CSTNode) -> bool:
    return any(n is part for n in _nodes(node))


def _calls_method(node: cst.CSTNode, methods: set[str]) -> bool:
    return any(
        isinstance(n, cst.Call) and isinstance(n.func, cst.Attribute) and n.func.attr.value in methods
        for n in _nodes(node)
    )


def _already_gathered(node: Comprehension) -> bool:
    return _calls_method(node, _GATHERS)
