"""AC001 setup."""

from __future__ import annotations

import libcst as cst

from accel_convert.analysis import symbols
from accel_convert.analysis.devices import DeviceDefinition, Flag, runs_after
from accel_convert.analysis.expressions import is_cpu_literal
from accel_convert.analysis.imports import dotted_name
from accel_convert.analysis.roles import Analysis
from accel_convert.analysis.traverse import Walker
from accel_convert.decisions.cpu_only import unplaced_model_input
from accel_convert.edits.placement import defined_after
from accel_convert.edits.plan import AppendArgument, AppendParameter, ReplaceWith
from accel_convert.rules.base import Rule


class Setup(Rule):
    """Import the runtime and create `accelerator = Accelerator(...)` once; the device comes from it.

    ## Why
    The accelerator knows which device this process owns (CPU, CUDA, MPS, one GPU per process under a launcher);
    the script's own device choice (`torch.device("cuda" if torch.cuda.is_available() else "cpu")`) does not.

    ## What it does
    - Adds `from accel import Accelerator` (or `from accelerate import Accelerator` with `--target accelerate`)
      after the module's imports.
    - Creates `accelerator = Accelerator()` once, in the scope that owns the training run (the one that creates the
      optimizer): at module level for a flat script (or when the device is defined at module level), at the top
      of `main()` or of the function that builds the objects otherwise, as `self.accelerator` in a trainer class's
      method. It goes right before the device definition when there is one, else before the first object of the
      run is created.
    - Every device definition (`device = torch.device(...)`, `device = "cuda:0"`, an `if`/`else` chain that picks
      one, `torch.accelerator.current_accelerator()`) becomes `device = accelerator.device`, so the remaining uses
      of `device` keep working. A device held as a string (`device = "cuda" if ... else "cpu"`) stays a string,
      `device = accelerator.device.type`, because code compares it (`device == "cuda"`) or passes it as
      `torch.autocast(device_type=device)`; tensors moved to `"cuda"` land on the process's own GPU.
    - Any condition under which the script chose the CPU is carried over as `cpu=`, minus the availability
      checks (`torch.cuda.is_available()`), which the accelerator makes itself: with `use_cuda = not
      args.no_cuda and torch.cuda.is_available()` the accelerator is created as `Accelerator(cpu=args.no_cuda)`;
      with `"cuda" if args.backend == "gpu" and torch.cuda.is_available() else "cpu"`, as
      `Accelerator(cpu=args.backend != "gpu")`; with `torch.device(args.device)` or a `--device` option used
      as `args.device`, as `Accelerator(cpu=args.device == "cpu")`; with `if args.cpu: device =
      torch.device("cpu")` after the definition, or an `if args.cpu: ... elif torch.cuda.is_available(): ...`
      chain, as `Accelerator(cpu=args.cpu)`. A choice that depends on availability alone (`True if
      torch.cuda.is_available() else False`) gives a plain `Accelerator()`.
    - A script that never names a device (no device, move, `torch.cuda` call, `device=` argument, GradScaler or
      `"cuda"`) runs on the CPU everywhere. Where its prepared model is fed tensors the script makes itself
      (`x = torch.randn(N, D)` then `model(x)`, `torch.from_numpy(state)`, a hand-made batch) rather than batches
      of a prepared loader, those would stay on the CPU while the model goes to the GPU, and the first forward
      would fail on a GPU machine: the accelerator is created as `Accelerator(cpu=True)`, which keeps the script
      where it ran, on one process and on N (a note says so and how to use the GPU: move those tensors with
      `.to(accelerator.device)` and drop `cpu=True`).
    - A device definition that a later one surely replaces before anything reads it (a module-level default
      that `if __name__ == "__main__":` sets again from the parsed options) stays as written: the accelerator
      is created at the later one, whose switch is the one the run obeys. Where the earlier one is read first,
      the accelerator is created there, still with the later one's switch.
    - A `use_cuda`-style flag whose every use went away (AC003 removed the moves it guarded) is removed.
    - A helper function that needs the accelerator (for `accelerator.backward`) and cannot see it gets an
      `accelerator` parameter, passed at each call site in the file.
    - A class of the file whose methods need it (a `Trainer(model, loader, optimizer)` built in `main()` after
      `prepare`) gets an `accelerator` parameter on `__init__`, stored first thing as `self.accelerator` and
      passed as `accelerator=accelerator` at every construction; its methods use `self.accelerator`. The class
      must be constructed by name only, where the accelerator is reachable; one that is subclassed, passed
      around as a value, decorated, or built by a classmethod is left alone, and the rules say what they could
      not convert.

    ## Example
    ```python
    def main():
        args = parser.parse_args()
        use_cuda = not args.no_cuda and torch.cuda.is_available()
        device = torch.device("cuda" if use_cuda else "cpu")
    ```
    becomes
    ```python
    from accel import Accelerator  # added after the file's last top-level import

    def main():
        args = parser.parse_args()
        use_cuda = not args.no_cuda and torch.cuda.is_available()
        accelerator = Accelerator(cpu=args.no_cuda)
        device = accelerator.device
    ```
    (`use_cuda` stays while other code still reads it.)
    """

    code = "AC001"
    name = "setup"
    summary = "Import the runtime and create `accelerator = Accelerator(...)` once; the device comes from it."
    notes = ("`Accelerator(cpu=True)` for a script that places nothing on a device and feeds its model tensors it makes itself",)

    def needs(self, decisions):
        return [(definition.scope, definition.location) for definition in decisions.analysis.device_definitions]

    def plan(self, context, plan):
        analysis = context.analysis
        access = context.access
        self._replace_devices(context, plan)
        for helper, keyword_only in access.passed.items():
            plan.expression(helper.node, AppendParameter("accelerator", keyword_only), helper.node)
            plan.changes.append(context.change(self.code, helper.node, f"`{helper.name}` takes the accelerator as a parameter"))
        for init, keyword_only in zip(access.initializers(analysis), access.classes.values()):
            plan.expression(init.node, AppendParameter("accelerator", keyword_only), init.node)
            _store_first(context, plan, init)
            plan.changes.append(context.change(self.code, init.node, f"`{init.class_name}` takes the accelerator as `self.accelerator`"))
        for site, by_keyword in access.call_sites:
            plan.expression(site.node, AppendArgument("accelerator", by_keyword, access.expression(site.scope)), site.statement)
            context.use(site.scope, site.location)

    def complete(self, context, plan):
        """Once every rule has planned: drop the device flags no longer read, create the accelerator with the
        arguments the rules asked for, and import what they name."""
        self._remove_flags(context, plan)
        self._create(context, plan)
        anchor, after = _import_anchor(context.analysis.facts.module)
        module = "accel" if context.options.target == "accel" else "accelerate"
        names = ", ".join(["Accelerator", *dict.fromkeys(context.accelerator_imports)])
        statement = cst.parse_statement(f"from {module} import {names}\n")
        if after:
            plan.statement(anchor).after.append(statement)
        else:
            plan.statement(anchor).before.append(statement)
        plan.changes.append(context.change(self.code, anchor, f"import `{names}` from `{module}`"))

    def _replace_devices(self, context, plan) -> None:
        for definition in context.analysis.device_definitions:
            accelerator = context.access.expression(definition.scope)
            if accelerator is None:
                plan.diagnostics.append(
                    context.diagnostic(self.code, definition.statement, f"device `{definition.key}` left as is: `{definition.scope.name}` cannot reach the accelerator")
                )
                continue
            # a device held as a string stays one ("cuda"), as code may compare it or pass it as a device type
            device = f"{accelerator}.device.type" if definition.string else f"{accelerator}.device"
            if definition.value is not None:
                plan.expression(definition.value, ReplaceWith(device), definition.statement)
            else:
                plan.statement(definition.statement).replacement = cst.parse_statement(f"{definition.key} = {device}\n")
            context.use(definition.scope, definition.location)
            plan.changes.append(context.change(self.code, definition.statement, f"`{definition.key}` is `{device}`"))

    def _remove_flags(self, context, plan) -> None:
        analysis = context.analysis
        gone = _gone_statements(analysis, plan)
        for flag in analysis.flags:
            statement = flag.assignment.statement
            if "." in flag.name or len(statement.body) != 1:
                continue
            binding = analysis.binding(flag.assignment.scope, flag.name)
            uses = [
                load
                for load in analysis.facts.loads
                if load.name == flag.name
                and load.location != flag.assignment.location
                and analysis.binding(load.scope, flag.name) == binding
            ]
            if uses and all(_is_gone(analysis, load.location, gone) for load in uses):
                plan.statement(statement).remove = True
                plan.changes.append(context.change(self.code, statement, f"`{flag.name}` no longer used: removed"))

    def _create(self, context, plan) -> None:
        analysis = context.analysis
        access = context.access
        home = access.home
        block_id, index = access.position
        anchor = analysis.facts.statement_at(block_id, index)
        cpu = _cpu_argument(analysis, home)
        if cpu is not None and defined_after(analysis, home, cpu[1], block_id, index):
            plan.diagnostics.append(
                context.diagnostic(self.code, anchor, f"`cpu={cpu[0]}` not passed to `Accelerator`: its names are set later")
            )
            cpu = None
        unplaced = unplaced_model_input(context.decisions) if cpu is None else None
        if unplaced is not None:
            cpu = ("True", set())
            message = (
                f"`Accelerator(cpu=True)`: the script places nothing on a device, so it runs on the CPU, and "
                f"`{context.code(unplaced.node).strip()}` feeds the model tensors it makes itself, which would stay on "
                "the CPU while the prepared model goes to the GPU; to train on the GPU, move them with "
                "`.to(accelerator.device)` and drop `cpu=True`"
            )
            plan.diagnostics.append(context.note(self.code, unplaced.node, message, unplaced.statement))
        given = [f"cpu={cpu[0]}"] if cpu is not None else []
        for code, names in context.accelerator_arguments:
            if defined_after(analysis, home, names, block_id, index):
                message = f"`{code}` not passed to `Accelerator`: its names are set later"
                plan.diagnostics.append(context.diagnostic(self.code, anchor, message))
            else:
                given.append(code)
        arguments = ", ".join(given)
        target = "accelerator" if not access.attribute else f"{home.self_name}.accelerator"
        plan.statement(anchor).before.append(cst.parse_statement(f"{target} = Accelerator({arguments})\n"))
        plan.changes.append(context.change(self.code, anchor, f"create `{target} = Accelerator({arguments})`"))


def _store_first(context, plan, init) -> None:
    """``self.accelerator = accelerator`` as the first statement of ``__init__`` (after its docstring)."""
    body = init.node.body.body
    statement = cst.parse_statement(f"{init.self_name}.accelerator = accelerator\n")
    first = body[0]
    if len(body) > 1 and _is_docstring(first):
        plan.statement(first).after.insert(0, statement)
    else:
        plan.statement(first).before.insert(0, statement)


def _is_docstring(statement) -> bool:
    return (
        isinstance(statement, cst.SimpleStatementLine)
        and isinstance(statement.body[0], cst.Expr)
        and isinstance(statement.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
    )


def _import_anchor(module: cst.Module) -> tuple[cst.CSTNode, bool]:
    """The statement to put the new import after (True) or, with no imports at the top, before (False)."""
    last = None
    first_code = None
    for index, statement in enumerate(module.body):
        if isinstance(statement, cst.SimpleStatementLine):
            if all(isinstance(small, (cst.Import, cst.ImportFrom)) for small in statement.body):
                last = statement
                continue
            is_docstring = index == 0 and isinstance(statement.body[0], cst.Expr) and isinstance(statement.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
            if is_docstring:
                continue
        if last is not None:
            break
        if first_code is None:
            first_code = statement
            break
    return (last, True) if last is not None else (first_code or module.body[-1], first_code is None)


def _gone_statements(analysis: Analysis, plan) -> set[int]:
    """Statements the plan removes or replaces, including ``if`` blocks left empty."""
    gone = {key for key, edit in plan.statements.items() if edit.remove or edit.replacement is not None}
    gone |= {id(d.statement) for d in analysis.device_definitions}
    for node, _, _ in reversed(analysis.facts.if_statements):
        body_gone = isinstance(node.body, cst.IndentedBlock) and all(id(s) in gone for s in node.body.body)
        if body_gone and node.orelse is None:
            gone.add(id(node))
    return gone


def _is_gone(analysis: Analysis, location, gone: set[int]) -> bool:
    return any(index >= 0 and id(analysis.facts.statement_at(block, index)) in gone for block, index in location)


def _cpu_argument(analysis: Analysis, home) -> tuple[str, set[str]] | None:
    """``(code, names it reads)`` of the ``cpu=`` argument that keeps the script's own switch to the CPU."""
    definitions = sorted(
        (d for d in analysis.device_definitions if d.scope is home), key=lambda d: tuple(i for _, i in d.location)
    )
    flags = [flag for flag in analysis.flags if flag.assignment.scope is home]
    if definitions:
        cpu = _definition_cpu(analysis, home, definitions[0])
        for later in definitions[1:]:
            if later.key != definitions[0].key or later.location == definitions[0].location:
                continue  # another variable, or an ``elif`` of the same chain
            if runs_after(analysis.facts, definitions[0].location, later.location):
                cpu = _definition_cpu(analysis, home, later)  # replaces the device the run uses
                continue
            upgrade = _accelerator_guard(analysis, definitions[0], later)
            if upgrade is not None and cpu is not None and cpu[0] == "True":
                cpu = _condition_cpu(analysis, home, upgrade)  # device = "cpu", then if G: device = "cuda"
                continue
            guard = _cpu_guard(analysis, definitions[0], later)
            if guard is None or (cpu is not None and cpu[0] == "True"):
                continue
            text = analysis.code(guard)
            text = f"({text})" if isinstance(guard, (cst.IfExp, cst.Lambda)) else text
            cpu = (text, _names(guard)) if cpu is None else (f"{text} or {cpu[0]}", _names(guard) | cpu[1])
        return cpu
    if flags:
        return _condition_cpu(analysis, home, flags[0].assignment.value)
    option = next((key for (owner, key) in analysis.option_devices if owner is home), None)
    return (f'{option} == "cpu"', {option.split(".")[0]}) if option is not None else None


def _definition_cpu(analysis: Analysis, home, definition: DeviceDefinition) -> tuple[str, set[str]] | None:
    if definition.device_argument is not None:
        node = definition.device_argument
        return f'{analysis.code(node)} == "cpu"', _names(node)
    if definition.cpu_literal:
        return "True", set()
    if definition.value is None and isinstance(definition.statement, cst.If):
        return _condition_cpu(analysis, home, _chain_condition(analysis, definition.statement))
    return _condition_cpu(analysis, home, definition.cuda_condition)


def _chain_condition(analysis: Analysis, node: cst.If) -> cst.BaseExpression | None:
    """When an ``if``/``elif``/``else`` chain picks an accelerator: for each branch that does, the tests before it
    false and its own true, ``(not a and b) or (not a and not b and c)``; None when every branch does."""
    disjuncts, earlier = [], []
    current: cst.If | cst.Else | None = node
    while current is not None:
        test = current.test if isinstance(current, cst.If) else None
        if not _picks_cpu(analysis, current.body.body[0].body[0].value):
            conjuncts = [cst.UnaryOperation(cst.Not(), _parenthesised(e)) for e in earlier]
            conjuncts += [test] if test is not None else []
            if not conjuncts:
                return None
            disjuncts.append(_joined(conjuncts, cst.And))
        earlier += [test] if test is not None else []
        current = current.orelse if isinstance(current, cst.If) else None
    return _joined(disjuncts, cst.Or) if disjuncts else None


def _picks_cpu(analysis: Analysis, value: cst.BaseExpression) -> bool:
    """``"cpu"`` or ``torch.device("cpu")``."""
    if isinstance(value, cst.Call) and analysis.qualify(value.func) == "torch.device" and value.args:
        value = value.args[0].value
    return is_cpu_literal(value)


def _parenthesised(node: cst.BaseExpression) -> cst.BaseExpression:
    if isinstance(node, (cst.BooleanOperation, cst.IfExp, cst.Lambda)) and not node.lpar:
        return node.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
    return node


def _joined(nodes: list[cst.BaseExpression], operator) -> cst.BaseExpression:
    result = nodes[0]
    for node in nodes[1:]:
        result = cst.BooleanOperation(result, operator(), node)
    return result


def _cpu_guard(analysis: Analysis, first: DeviceDefinition, later: DeviceDefinition) -> cst.BaseExpression | None:
    """``G`` when ``later`` is ``device = "cpu"`` alone under ``if G:`` (no ``else``), in the block of ``first``."""
    location, block = later.location, first.location[-1][0]
    if not later.cpu_literal or len(location) < 2 or location[-2][0] != block or location[:-2] != first.location[:-1]:
        return None
    statement = analysis.facts.statement_at(*location[-2])
    if not (isinstance(statement, cst.If) and statement.orelse is None and id(statement.body) == location[-1][0]):
        return None
    return statement.test


def _accelerator_guard(analysis: Analysis, first: DeviceDefinition, later: DeviceDefinition) -> cst.BaseExpression | None:
    """``G`` when ``first`` is ``device = "cpu"`` and ``later`` an accelerator device in the first branch of an
    ``if G:`` right in the block of ``first`` (``elif`` branches after it may pick other devices)."""
    location, block = later.location, first.location[-1][0]
    if not first.cpu_literal or later.cpu_literal or len(location) < 2 or location[-2][0] != block:
        return None
    if location[:-2] != first.location[:-1]:
        return None
    statement = analysis.facts.statement_at(*location[-2])
    if not (isinstance(statement, cst.If) and id(statement.body) == location[-1][0]):
        return None
    return statement.test


def _condition_cpu(analysis: Analysis, home, condition: cst.BaseExpression | None) -> tuple[str, set[str]] | None:
    """``cpu=`` for a device that is an accelerator when ``condition`` holds, minus the availability checks."""
    if condition is None:
        return None
    disjuncts = _split(condition, cst.Or)
    negations = []
    names: set[str] = set()
    for disjunct in disjuncts:
        conjuncts = [c for c in _expand(analysis, home, disjunct) if not _is_availability_check(analysis, c)]
        if not conjuncts:
            return None
        for conjunct in conjuncts:
            names |= _names(conjunct)
        if len(conjuncts) == 1:
            negations.append(_negation(analysis, conjuncts[0]))
        else:
            negations.append(("not (" + " and ".join(analysis.code(c) for c in conjuncts) + ")", False))
    unique = dict(negations)  # the same switch reached through several branches counts once
    if len(unique) == 1:
        return next(iter(unique)), names
    return " and ".join(f"({text})" if loose else text for text, loose in unique.items()), names


def _is_availability_check(analysis: Analysis, node: cst.BaseExpression) -> bool:
    """``torch.cuda.is_available()`` or its negation: the accelerator makes that choice itself."""
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Not):
        node = node.expression
    return isinstance(node, cst.Call) and analysis.qualify(node.func) in symbols.AVAILABILITY_CHECKS


_INVERSES = {
    cst.Equal: cst.NotEqual,
    cst.NotEqual: cst.Equal,
    cst.In: cst.NotIn,
    cst.NotIn: cst.In,
    cst.Is: cst.IsNot,
    cst.IsNot: cst.Is,
}


def _negation(analysis: Analysis, node: cst.BaseExpression) -> tuple[str, bool]:
    """Code for ``not node`` as a reader would write it, and whether it needs parentheses to be joined with
    ``and`` (an ``and``/``or`` or conditional expression): ``not x`` loses its ``not``, ``a == b`` becomes
    ``a != b`` (only (in)equality, membership and identity: ``not a < b`` differs from ``a >= b`` for NaN)."""
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Not):
        inner = node.expression
        if isinstance(inner, cst.BooleanOperation):
            inner = inner.with_changes(lpar=[], rpar=[])
        return analysis.code(inner), isinstance(inner, (cst.BooleanOperation, cst.IfExp, cst.Lambda))
    if isinstance(node, cst.Comparison) and len(node.comparisons) == 1 and not node.lpar:
        target = node.comparisons[0]
        inverse = _INVERSES.get(type(target.operator))
        if inverse is not None:
            return analysis.code(node.with_changes(comparisons=[target.with_changes(operator=inverse())])), False
    if isinstance(node, (cst.BooleanOperation, cst.IfExp, cst.Lambda)):
        return f"not ({analysis.code(node.with_changes(lpar=[], rpar=[]))})", False
    return f"not {analysis.code(node)}", False


def _split(node: cst.BaseExpression, operator) -> list[cst.BaseExpression]:
    if isinstance(node, cst.BooleanOperation) and isinstance(node.operator, operator) and not node.lpar:
        return _split(node.left, operator) + _split(node.right, operator)
    return [node.with_changes(lpar=[], rpar=[]) if isinstance(node, cst.BooleanOperation) and isinstance(node.operator, operator) else node]


def _expand(analysis: Analysis, scope, node: cst.BaseExpression) -> list[cst.BaseExpression]:
    """The conjuncts of a condition, with ``use_cuda``-style flags replaced by what they were set to."""
    result = []
    for conjunct in _split(node, cst.And):
        truth = _boolean_choice(conjunct)
        if truth is not None:
            result += _expand(analysis, scope, truth)
            continue
        if isinstance(conjunct, cst.UnaryOperation) and isinstance(conjunct.operator, cst.Not):
            inner = conjunct.expression
            if isinstance(inner, cst.UnaryOperation) and isinstance(inner.operator, cst.Not):
                result += _expand(analysis, scope, inner.expression)
                continue
        key = dotted_name(conjunct)
        flag = _flag(analysis, scope, key) if key is not None else None
        if flag is not None:
            result += _expand(analysis, scope, flag.assignment.value)
        else:
            result.append(conjunct)
    return result


def _boolean_choice(node: cst.BaseExpression) -> cst.BaseExpression | None:
    """``C`` for ``True if C else False``, ``not C`` for ``False if C else True``; None for anything else."""
    if not isinstance(node, cst.IfExp):
        return None
    branches = [b.value if isinstance(b, cst.Name) else None for b in (node.body, node.orelse)]
    if branches == ["True", "False"]:
        return node.test
    if branches == ["False", "True"]:
        return cst.UnaryOperation(cst.Not(), node.test)
    return None


def _flag(analysis: Analysis, scope, key: str) -> Flag | None:
    binding = analysis.binding(scope, key)
    for flag in analysis.flags:
        if flag.name == key and analysis.binding(flag.assignment.scope, key) == binding:
            return flag
    return None


def _names(node: cst.CSTNode) -> set[str]:
    """Names and dotted names (``args``, ``args.no_cuda``) an expression reads."""
    names = set()

    class _Names(Walker):
        def visit_Name(self, name: cst.Name) -> None:
            names.add(name.value)

        def visit_Attribute(self, attribute: cst.Attribute) -> bool:
            key = dotted_name(attribute)
            if key is not None:
                names.add(key)
            self.walk(attribute.value)
            return False

    _Names().walk(node)
    return names
