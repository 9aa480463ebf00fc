"""Evaluation loops: loops over a prepared data loader that only run the model forward (no backward, no step).

A loop over batches is an evaluation loop when nothing in it calls ``.backward()`` or ``.step()`` and it runs
without gradients (inside ``with torch.no_grad()`` / ``torch.inference_mode()``, in a function decorated with one of
them, or after ``model.eval()`` in the same function), or when its loader is never iterated by a training loop.
For each one this module finds the *forward statement* (``out = model(x)``), the batch values read after it, and
what cannot be gathered safely.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from accel_convert.analysis.collectives import synchronises_after, synchronising_scopes
from accel_convert.analysis.expressions import root_name
from accel_convert.analysis.facts import Assignment, Location, Loop, Scope, target_names
from accel_convert.analysis.imports import dotted_name
from accel_convert.analysis.roles import LOADER, MODEL, Analysis, connected
from accel_convert.analysis.traverse import Walker
from accel_convert.rules.gather_for_metrics.batch_means import batch_mean_loss, without_scalar_methods
from accel_convert.rules.gather_for_metrics.fixed_ranges import FixedRange, fixed_ranges
from accel_convert.rules.gather_for_metrics.metric_fit import fit_to_metrics, free_name
from accel_convert.rules.gather_for_metrics.metric_flow import metric_flow

NO_GRAD = frozenset({"torch.no_grad", "torch.inference_mode", "torch.set_grad_enabled", "torch.enable_grad"})
_TRAINING_METHODS = ("backward", "step")
# Methods that keep a batch tensor a per-sample tensor (so it can be gathered like the batch itself).
_PER_SAMPLE_METHODS = frozenset(
    "float double half bfloat16 long int bool squeeze unsqueeze view view_as reshape flatten contiguous clone detach to cuda".split()
)

# Methods that reduce each sample's row when given a dimension (``out.argmax(dim=1)``).
_ROW_METHODS = frozenset({"argmax", "argmin", "softmax", "log_softmax"})


@dataclass(eq=False)
class EvaluationLoop:
    loop: Loop
    statement: cst.CSTNode | None = None  # the statement that runs the forward pass (a simple statement line)
    location: Location = ()
    inline: cst.Call | None = None  # the model call, when its output is used inline and gets a name first
    gathered: list[str] = field(default_factory=list)  # names to pass through gather_for_metrics, in order
    problem: str | None = None  # why the loop is left as it is
    problem_node: cst.CSTNode | None = None
    mean_sums: list[cst.CSTNode] = field(default_factory=list)  # ``total += loss.item()`` of a batch-mean loss
    gathered_as: list[str] = field(default_factory=list)  # the names the gather binds, in the order of ``gathered``
    renamed: list[tuple[cst.Name, cst.CSTNode]] = field(default_factory=list)  # metric reads of a gathered name
    inline_output: str | None = None  # the name an inline model call's output is assigned to first
    inline_as: str | None = None  # the name that replaces an inline model call
    resized: list[FixedRange] = field(default_factory=list)  # ``range(batch_size)`` bounds -> ``len(<gathered>)``

    def set_problem(self, problem: str, node: cst.CSTNode) -> EvaluationLoop:
        self.problem, self.problem_node = problem, node
        return self


def evaluation_loops(analysis: Analysis, prepared_bindings: set) -> list[EvaluationLoop]:
    """The evaluation loops over prepared loaders (``prepared_bindings``: the decision stage's), each with what to gather or why it cannot."""
    trained = training_loaders(analysis)
    synchronising = {scope.name for scope in synchronising_scopes(analysis)}
    found = []
    for loop in analysis.batch_loops:
        binding = _loader_origin(analysis, loop)
        if binding is None or not prepared(analysis, prepared_bindings, binding) or _trains(analysis, loop):
            continue
        if not (without_gradients(analysis, loop.scope, loop.location) or not connected(analysis, binding, upstream=True) & trained):
            continue
        if not _calls_model(analysis, loop) or synchronises_after(analysis, loop, synchronising):
            continue  # metrics combined across processes by the script itself (all_reduce, a logger's sync)
        found.append(_describe(analysis, loop))
    return found


def training_loaders(analysis: Analysis) -> set:
    """The bindings that hold (or feed) a loader some training loop iterates."""
    found = set()
    for loop in analysis.batch_loops:
        if _trains(analysis, loop) and _loader_origin(analysis, loop) is not None:
            found |= connected(analysis, _loader_origin(analysis, loop), upstream=True)
    return found


def _loader_origin(analysis: Analysis, loop: Loop):
    return loader_binding(analysis, loop.scope, loop.node.iter)


def loader_binding(analysis: Analysis, scope: Scope, iterable: cst.BaseExpression):
    """The loader binding ``iterable`` iterates (directly or via enumerate/tqdm), or None."""
    node = iterable
    while isinstance(node, cst.Call):  # enumerate(loader), tqdm(loader)
        positional = [arg.value for arg in node.args if arg.keyword is None and not arg.star]
        if not positional:
            return None
        node = positional[0]
    key = dotted_name(node)
    if key is None:
        return None
    binding = analysis.binding(scope, key)
    return binding if analysis.roles.get(binding) == LOADER else None


def prepared(analysis: Analysis, prepared_bindings: set, binding) -> bool:
    """True when the loader held by ``binding`` is prepared: it, or a binding it comes from, is one the decision
    stage's ``prepare`` takes or hands the prepared object on to."""
    return binding in prepared_bindings or bool(connected(analysis, binding, upstream=True) & prepared_bindings)


def _inside(loop: Loop, location: Location) -> bool:
    depth = len(loop.location)
    return location[:depth] == loop.location and len(location) > depth


def _trains(analysis: Analysis, loop: Loop) -> bool:
    for site in analysis.facts.calls:
        func = site.node.func
        if loop in site.loops and isinstance(func, cst.Attribute) and func.attr.value in _TRAINING_METHODS:
            return True
    return False


def without_gradients(analysis: Analysis, scope: Scope, location: Location) -> bool:
    """Code at ``location`` runs under no_grad / inference_mode (a ``with`` or a decorator) or after model.eval()."""
    facts = analysis.facts
    for block, index in location:
        if index < 0:
            continue
        statement = facts.statement_at(block, index)
        if isinstance(statement, cst.With) and any(_is_no_grad(analysis, item.item) for item in statement.items):
            return True
    enclosing = scope
    while enclosing is not None and enclosing.parent is not None:
        if any(_is_no_grad(analysis, decorator.decorator) for decorator in enclosing.node.decorators):
            return True
        enclosing = enclosing.parent
    for site in facts.calls:
        func = site.node.func
        if site.scope is scope and isinstance(func, cst.Attribute) and func.attr.value == "eval":
            if analysis.role_of(site.scope, func.value) == MODEL and _index_path(site.location) < _index_path(location):
                return True
    return False


def _is_no_grad(analysis: Analysis, node: cst.BaseExpression) -> bool:
    call = node.func if isinstance(node, cst.Call) else node
    qualified = analysis.qualify(call)
    if qualified == "torch.set_grad_enabled":
        return isinstance(node, cst.Call) and bool(node.args) and _is_false(node.args[0].value)
    return qualified in NO_GRAD - {"torch.enable_grad", "torch.set_grad_enabled"}


def _is_false(node: cst.BaseExpression) -> bool:
    return isinstance(node, cst.Name) and node.value == "False"


def is_model_call(analysis: Analysis, scope: Scope, node: cst.BaseExpression) -> bool:
    return isinstance(node, cst.Call) and analysis.role_of(scope, node.func) == MODEL


def _calls_model(analysis: Analysis, loop: Loop) -> bool:
    return any(loop in site.loops and is_model_call(analysis, site.scope, site.node) for site in analysis.facts.calls)


def model_output(analysis: Analysis, scope: Scope, node: cst.BaseExpression) -> bool:
    """``model(x)``, ``model(x).logits``, ``model(x)[0]``, ``model(x).squeeze(1)``: the model's output itself."""
    while True:
        if is_model_call(analysis, scope, node):
            return True
        if isinstance(node, (cst.Attribute, cst.Subscript)):
            node = node.value
        elif isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
            method = node.func.attr.value
            if method not in _PER_SAMPLE_METHODS and not (method in _ROW_METHODS and node.args):
                return False
            node = node.func.value
        else:
            return False


def _batch_targets(loop: Loop) -> list[str]:
    """Names the loop binds to what the loader yields (``for i, (x, y) in enumerate(loader)``: x and y)."""
    node = loop.node
    iterable, target = node.iter, node.target
    if isinstance(iterable, cst.Call) and isinstance(iterable.func, cst.Name) and iterable.func.value == "enumerate":
        if not isinstance(target, (cst.Tuple, cst.List)) or len(target.elements) != 2:
            return []
        target = target.elements[1].value
    return target_names(target)


def _per_sample(node: cst.BaseExpression, names: set[str]) -> bool:
    """An expression that is a batch value itself or a view of it (no reduction): ``batch["y"]``, ``y.float()``."""
    while True:
        if isinstance(node, cst.Name):
            return node.value in names
        if isinstance(node, (cst.Attribute, cst.Subscript)):
            node = node.value
        elif isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value in _PER_SAMPLE_METHODS:
            node = node.func.value
        else:
            return False


def _index_path(location: Location) -> tuple[int, ...]:
    return tuple(index for _, index in location)


def _describe(analysis: Analysis, loop: Loop) -> EvaluationLoop:
    facts = analysis.facts
    assignments = [a for a in facts.assignments if a.scope is loop.scope and _inside(loop, a.location)]
    forwards = [a for a in assignments if model_output(analysis, loop.scope, a.value)]
    if forwards:
        forward = max(forwards, key=lambda a: _index_path(a.location))
        found = EvaluationLoop(loop, forward.statement, forward.location)
        outputs = [n for a in forwards for target in a.targets for n in target_names(target)]
        here = _index_path(forward.location)
        read = {load.name for load in facts.loads if _in_loop_after(loop, load, here)}
    else:
        sites = [s for s in facts.calls if loop in s.loops and is_model_call(analysis, s.scope, s.node)]
        site = sites[0]
        found = EvaluationLoop(loop, site.statement, site.location, inline=site.node)
        if len(sites) > 1 or not isinstance(site.statement, cst.SimpleStatementLine) or site.comprehensions:
            found.problem, found.problem_node = "the model is called more than once, or inside a compound statement", site.node
            return found
        outputs = [free_name(loop.scope, "outputs")]
        here = _index_path(site.location)
        read = {load.name for load in facts.loads if _in_loop_after(loop, load, here)} | _names_outside(site.statement, site.node)
    samples, derived = _batch_values(loop, assignments, here)
    unsafe = sorted(read & (derived - samples - set(outputs)))
    if unsafe:
        found.problem = f"`{unsafe[0]}` is computed from this process's batch before the forward pass and used after it"
        found.problem_node = found.statement
        return found
    found.mean_sums = _mean_sums(analysis, loop, assignments, here, found.statement if found.inline is not None else None)
    found.gathered = list(dict.fromkeys(outputs))
    targets = _batch_targets(loop)
    order = targets + sorted(samples - set(targets))
    found.gathered += [name for name in order if name in read and name not in found.gathered]
    found.gathered_as = list(found.gathered)
    if found.inline is not None:
        found.inline_output = found.inline_as = found.gathered[0]
    flow = metric_flow(loop.node, found.statement, found.inline, found.inline_output)
    found = fit_to_metrics(analysis, loop, found, flow, outputs, assignments)
    if found.problem is None:
        gathered = dict(zip(found.gathered, found.gathered_as))
        found.resized, problem = fixed_ranges(analysis, loop, _loader_origin(analysis, loop), flow, gathered)
        if problem is not None:
            found.set_problem(*problem)
    return found


def _in_loop_after(loop: Loop, load, here: tuple[int, ...]) -> bool:
    return load.scope is loop.scope and _inside(loop, load.location) and _index_path(load.location) > here


def _batch_values(loop: Loop, assignments: list[Assignment], here: tuple[int, ...]) -> tuple[set[str], set[str]]:
    """Names holding per-sample batch values before the forward pass, and names computed from them otherwise."""
    samples = set(_batch_targets(loop))
    derived: set[str] = set()
    for assignment in sorted(assignments, key=lambda a: _index_path(a.location)):
        if _index_path(assignment.location) >= here:
            break
        names = {n for target in assignment.targets for n in target_names(target)}
        if _per_sample(assignment.value, samples) or _unpacks_samples(assignment, samples):
            samples |= names
        elif root_name(assignment.value) in samples | derived:
            derived |= names
    return samples, derived


def _unpacks_samples(assignment: Assignment, samples: set[str]) -> bool:
    """``inputs, targets = batch[0], batch[1]``: each target takes a per-sample view of the batch."""
    value = assignment.value
    if not isinstance(value, (cst.Tuple, cst.List)) or len(value.elements) != len(assignment.targets):
        return False
    return all(isinstance(e, cst.Element) and _per_sample(e.value, samples) for e in value.elements)


def _names_outside(statement: cst.CSTNode, call: cst.Call) -> set[str]:
    """Variable names a statement reads, leaving out those inside ``call``."""
    names: set[str] = set()

    class _Names(Walker):
        def visit_Call(self, node: cst.Call) -> bool:
            return node is not call

        def visit_Name(self, node: cst.Name) -> None:
            names.add(node.value)

        def visit_Attribute(self, node: cst.Attribute) -> bool:
            self.walk(node.value)
            return False

    _Names().walk(statement)
    return names


def _mean_sums(analysis: Analysis, loop: Loop, assignments: list[Assignment], here, inline=None) -> list[cst.CSTNode]:
    """``total += loss.item()`` (or ``total = total + loss.item()``) after the forward pass, where ``loss`` is a loss
    averaged over the batch; with an inline forward pass (``inline``, its statement) that statement too
    (``total += F.mse_loss(model(x), y).item()``)."""
    statements = list(_statements_after(analysis, loop, here))
    if isinstance(inline, cst.SimpleStatementLine):
        statements.insert(0, inline)
    found = []
    for statement in statements:
        for small in statement.body:
            added = summed_value(small)
            if added is not None and batch_mean_loss(analysis, loop.scope, assignments, without_scalar_methods(added)):
                found.append(small)
    return found


def summed_value(small: cst.CSTNode) -> cst.BaseExpression | None:
    """What ``total += x`` or ``total = total + x`` (``x + total``) adds to ``total``; None for anything else."""
    if isinstance(small, cst.AugAssign) and isinstance(small.operator, cst.AddAssign):
        return small.value
    if isinstance(small, cst.Assign) and len(small.targets) == 1 and isinstance(small.value, cst.BinaryOperation):
        target, value = small.targets[0].target, small.value
        if isinstance(target, cst.Name) and isinstance(value.operator, cst.Add):
            for own, other in ((value.left, value.right), (value.right, value.left)):
                if isinstance(own, cst.Name) and own.value == target.value:
                    return other
    return None


def summed_total(small: cst.CSTNode) -> cst.BaseExpression:
    """The name ``total += x`` or ``total = total + x`` adds to."""
    return small.target if isinstance(small, cst.AugAssign) else small.targets[0].target


def _statements_after(analysis: Analysis, loop: Loop, here):
    for key, location in analysis.facts.statement_locations.items():
        if _inside(loop, location) and _index_path(location) > here:
            statement = analysis.facts.statement_at(*location[-1])
            if isinstance(statement, cst.SimpleStatementLine):
                yield statement
