"""AC015 gradient-accumulation."""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from accel_convert.analysis.facts import Loop, target_names
from accel_convert.analysis.imports import dotted_name
from accel_convert.analysis.roles import MODEL, OPTIMIZER, PREPARED_ROLES
from accel_convert.edits.plan import ReplaceWith
from accel_convert.rules.base import Rule


class GradientAccumulation(Rule):
    """Turn hand-written gradient accumulation into `with accelerator.accumulate(model):` over k steps.

    ## Why
    Accumulating by hand (`loss / k`, `backward()` every batch, `step()` every k-th batch) makes every process
    synchronise its gradients on every backward pass, k times more often than needed. Inside
    `accelerator.accumulate(model)` the accelerator skips that synchronisation until the step, divides the loss
    by k itself, and steps the optimizer on every k-th batch and on the last batch of the loader.

    ## What it does
    In a loop over `enumerate(loader)` whose body ends with `if (i + 1) % k == 0:` holding the optimizer's
    `step()` and `zero_grad()` (and anything else stepped with it, such as a scheduler), and whose loss is divided
    by the same `k` on its way to `backward()` (`(loss / k).backward()`, `loss = loss / k`, `loss /= k`,
    `criterion(...) / k`):

    - the accelerator is created with `gradient_accumulation_steps=k`;
    - the division by `k` goes away (the accelerator's `backward` divides; a leftover division would divide twice);
      a statement that only divided (`loss = loss / k`) is removed when nothing else reads the divided value;
    - the loop body is wrapped in `with accelerator.accumulate(model):` and the `if` is replaced by its body:
      a prepared optimizer's `step()` and `zero_grad()` do nothing until gradients are synchronised.

    The loop is left as it is, with a diagnostic, when `zero_grad()` also runs at the top of the body (it would
    wipe the accumulated gradients; the original then does not accumulate either), when the divided loss is
    read elsewhere, or when `k` is set only after the point where the accelerator is created.

    **Unsafe** (in ruff's sense): when the number of batches is not a multiple of `k`, the accelerator also steps
    on the last, shorter group of the epoch, which the original left in the gradients for the next epoch.

    ## Example
    ```python
    for i, (x, y) in enumerate(loader):
        loss = criterion(model(x), y)
        (loss / accumulation_steps).backward()
        if (i + 1) % accumulation_steps == 0:
            optimizer.step()
            optimizer.zero_grad()
    ```
    becomes
    ```python
    for i, (x, y) in enumerate(loader):
        with accelerator.accumulate(model):
            loss = criterion(model(x), y)
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
    ```
    with `accelerator = Accelerator(gradient_accumulation_steps=accumulation_steps)`.
    """

    code = "AC015"
    name = "gradient-accumulation"
    summary = "Turn hand-written gradient accumulation into `with accelerator.accumulate(model):` over k steps."
    unsafe = True

    def needs(self, decisions):
        return [(found.loop.scope, found.loop.location) for found in _accumulations(decisions.analysis) if found.problem is None]

    def plan(self, context, plan):
        found_all = _accumulations(context.analysis)
        steps = {context.code(found.steps) for found in found_all if found.problem is None}
        converted = []
        for found in found_all:
            accelerator = context.access.expression(found.loop.scope)
            problem = found.problem
            if problem is None and accelerator is None:
                problem = f"`{found.loop.scope.name}` cannot reach the accelerator"
            if problem is None and len(steps) > 1:
                problem = "loops accumulate over different numbers of steps"
            if problem is None and _set_late(context.analysis, context.access.home, found.steps):
                problem = f"`{context.code(found.steps)}` is set after the accelerator is created"
            if problem is not None:
                plan.diagnostics.append(context.diagnostic(self.code, found.guard, f"gradient accumulation left as is: {problem}"))
                continue
            for node, statement in found.divisions:
                plan.expression(node, ReplaceWith(context.code(node.left)), statement)
            for statement in found.removed:
                plan.statement(statement).remove = True
            loop = found.loop.node
            plan.expression(loop, _Accumulate(f"{accelerator}.accumulate({found.model})", found.guard.test), loop)
            context.use(found.loop.scope, found.loop.location)
            plan.changes.append(context.change(self.code, found.guard, f"accumulate gradients over `{context.code(found.steps)}` steps with `{accelerator}.accumulate`"))
            converted.append(found)
        if converted:
            code = f"gradient_accumulation_steps={context.code(converted[0].steps)}"
            context.accelerator_arguments.append((code, _names(converted[0].steps)))


@dataclass(frozen=True)
class _Accumulate:
    """Wrap a loop's body in ``with <context>:`` and replace the accumulation ``if`` by its body."""

    context: str
    test: cst.BaseExpression

    def apply(self, loop: cst.For) -> cst.For:
        statements = []
        for statement in loop.body.body:
            if isinstance(statement, cst.If) and statement.test.deep_equals(self.test):
                inner = list(statement.body.body)
                if inner:
                    inner[0] = inner[0].with_changes(leading_lines=[*statement.leading_lines, *inner[0].leading_lines])
                statements += inner
            else:
                statements.append(statement)
        item = cst.WithItem(cst.parse_expression(self.context))
        wrapped = cst.With(items=[item], body=cst.IndentedBlock(body=statements))
        return loop.with_changes(body=loop.body.with_changes(body=[wrapped]))


@dataclass(eq=False)
class _Found:
    loop: Loop
    guard: cst.If
    steps: cst.BaseExpression
    model: str = ""
    divisions: list = None
    removed: list = None
    problem: str | None = None


def _accumulations(analysis) -> list[_Found]:
    found = []
    for loop in analysis.batch_loops:
        node = loop.node
        index = _enumerate_index(node)
        if index is None or not isinstance(node.body, cst.IndentedBlock):
            continue
        for statement in node.body.body:
            steps = _guard_steps(statement, index)
            if steps is not None and _steps_optimizer(analysis, loop, statement):
                found.append(_describe(analysis, loop, statement, steps))
                break
    return found


def _enumerate_index(node: cst.For) -> str | None:
    iterable, target = node.iter, node.target
    if not (isinstance(iterable, cst.Call) and isinstance(iterable.func, cst.Name) and iterable.func.value == "enumerate"):
        return None
    if isinstance(target, cst.Tuple) and len(target.elements) == 2 and isinstance(target.elements[0].value, cst.Name):
        return target.elements[0].value.value
    return None


def _guard_steps(statement, index: str) -> cst.BaseExpression | None:
    """``k`` of ``if (i + 1) % k == 0:`` (no ``else``)."""
    if not isinstance(statement, cst.If) or statement.orelse is not None:
        return None
    test = statement.test
    if not (isinstance(test, cst.Comparison) and len(test.comparisons) == 1):
        return None
    comparison = test.comparisons[0]
    if not (isinstance(comparison.operator, cst.Equal) and isinstance(comparison.comparator, cst.Integer) and comparison.comparator.value == "0"):
        return None
    modulo = test.left
    if not (isinstance(modulo, cst.BinaryOperation) and isinstance(modulo.operator, cst.Modulo)):
        return None
    counter = modulo.left
    is_next = (
        isinstance(counter, cst.BinaryOperation)
        and isinstance(counter.operator, cst.Add)
        and isinstance(counter.left, cst.Name)
        and counter.left.value == index
        and isinstance(counter.right, cst.Integer)
        and counter.right.value == "1"
    )
    return modulo.right if is_next else None


def _line_calls(line) -> list[tuple[str, str]]:
    """(receiver, method) of the ``receiver.method(...)`` expression statements of one simple line."""
    calls = []
    if isinstance(line, cst.SimpleStatementLine):
        for small in line.body:
            if isinstance(small, cst.Expr) and isinstance(small.value, cst.Call) and isinstance(small.value.func, cst.Attribute):
                calls.append((dotted_name(small.value.func.value) or "", small.value.func.attr.value))
    return calls


def _method_calls(statement: cst.If) -> list[tuple[str, str]]:
    return [call for line in statement.body.body for call in _line_calls(line)]


def _steps_optimizer(analysis, loop: Loop, statement) -> bool:
    calls = _method_calls(statement)
    return any(
        method == "step" and analysis.roles.get(analysis.binding(loop.scope, key)) == OPTIMIZER for key, method in calls
    ) and any(method == "zero_grad" for _, method in calls)


def _divided_by(node, steps) -> bool:
    return isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Divide) and node.right.deep_equals(steps)


def _describe(analysis, loop: Loop, guard: cst.If, steps) -> _Found:
    found = _Found(loop, guard, steps, divisions=[], removed=[])
    body = loop.node.body.body
    for statement in body:
        if statement is guard:
            break
        if any(method == "zero_grad" for _, method in _line_calls(statement)):
            found.problem = "`zero_grad()` runs before the `if` too and would wipe the accumulated gradients"
            return found
    models = {key for (holder, key), role in analysis.roles.items() if role == MODEL and holder is loop.scope}
    called = [site for site in analysis.facts.calls if loop in site.loops and dotted_name(site.node.func) in models]
    if not called:
        found.problem = "no model of this function is called in the loop"
        return found
    found.model = dotted_name(called[0].node.func)
    backward = [site for site in analysis.backward_calls if loop in site.loops]
    if len(backward) != 1:
        found.problem = "the loop does not call `backward()` exactly once"
        return found
    receiver = backward[0].node.func.value
    if _divided_by(receiver, steps):
        found.divisions.append((receiver, backward[0].statement))
        return found
    name = dotted_name(receiver)
    for assignment in analysis.facts.assignments:
        if loop not in assignment.loops or len(assignment.targets) != 1 or dotted_name(assignment.targets[0]) != name:
            continue
        if _divided_by(assignment.value, steps):
            value = assignment.value
            if value.left.deep_equals(assignment.targets[0]):
                found.removed.append(assignment.statement)
            else:
                found.divisions.append((value, assignment.statement))
            return _check_reads(analysis, found, name, assignment.location, backward[0])
    for statement in body:
        if isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1:
            small = statement.body[0]
            if isinstance(small, cst.AugAssign) and isinstance(small.operator, cst.DivideAssign):
                if dotted_name(small.target) == name and small.value.deep_equals(steps):
                    found.removed.append(statement)
                    location = analysis.facts.statement_locations[id(statement)]
                    return _check_reads(analysis, found, name, location, backward[0])
    found.problem = f"the loss is not divided by `{analysis.code(steps)}` before `backward()`"
    return found


def _check_reads(analysis, found: _Found, name: str, location, backward) -> _Found:
    """The divided loss must reach only ``backward()``: once the division is gone, other reads would change."""
    after = tuple(index for _, index in location)
    for load in analysis.facts.loads:
        path = tuple(index for _, index in load.location)
        if load.name == name and load.scope is found.loop.scope and path > after and load.location != backward.location:
            if load.location[: len(found.loop.location)] == found.loop.location:
                found.problem = f"`{name}` divided by `{analysis.code(found.steps)}` is read after `backward()` too"
                break
    return found


def _set_late(analysis, home, steps) -> bool:
    """True when ``steps`` is (re)bound in the accelerator's home scope after the earliest place it may be created."""
    names = _names(steps)
    candidates = [d.location for d in analysis.device_definitions if d.scope is home]
    candidates += [f.assignment.location for f in analysis.flags if f.assignment.scope is home]
    candidates += [a.location for b, a in analysis.creations.items() if a.scope is home and analysis.roles.get(b) in PREPARED_ROLES]
    if not candidates:
        return False
    earliest = min(tuple(index for _, index in location) for location in candidates)
    for assignment in analysis.facts.assignments:
        bound = {n for target in assignment.targets for n in target_names(target)}
        if assignment.scope is home and bound & names and tuple(i for _, i in assignment.location) >= earliest:
            return True
    return False


def _names(node) -> set[str]:
    key = dotted_name(node)
    return {key.split(".")[0]} if key is not None else set()
