"""AC014 mixed-precision."""

from __future__ import annotations

import builtins
from dataclasses import dataclass

import libcst as cst

from accel_convert.analysis import symbols
from accel_convert.analysis.imports import dotted_name
from accel_convert.analysis.traverse import Walker, free_names
from accel_convert.edits.placement import defined_after
from accel_convert.edits.plan import ReplaceWith, expression
from accel_convert.rules.base import Rule

AUTOCASTS = frozenset({"torch.cuda.amp.autocast", "torch.autocast", "torch.amp.autocast", "torch.cpu.amp.autocast"})
_BF16 = frozenset({"torch.bfloat16"})
_STEPPING = ("scale", "step", "update", "unscale_")
# where a conditional expression may stand without parentheses
_BARE_PARENTS = (cst.Arg, cst.DictElement, cst.Element, cst.Assign, cst.AnnAssign, cst.Return, cst.Expr)


@dataclass(frozen=True)
class GuardScaler:
    """``scaler.load_state_dict(...)`` as a statement -> the same call on the accelerator's scaler, when it has one."""

    accelerator: str

    def apply(self, statement: cst.SimpleStatementLine) -> cst.If:
        test = expression(f"{self.accelerator}.scaler is not None")
        body = cst.IndentedBlock([statement.with_changes(leading_lines=[])])
        return cst.If(test=test, body=body, leading_lines=statement.leading_lines)


@dataclass(eq=False)
class _Scaler:
    name: str
    scope: object
    statement: cst.CSTNode
    call: cst.Call
    # ``GradScaler() if c else None``: the expression true when the scaler exists (``c``, or ``not c`` for
    # ``None if c else GradScaler()``); None for a scaler made unconditionally
    condition: cst.BaseExpression | None = None


class MixedPrecision(Rule):
    """Replace a hand-written `GradScaler` and `autocast` by the accelerator's mixed precision.

    ## Why
    The accelerator owns loss scaling and autocast for the device each process runs on (CUDA, CPU, MPS) and for
    every backend (DeepSpeed and FSDP keep their own scalers). A script's `torch.cuda.amp.GradScaler` next to it
    would scale the loss twice, or not at all on a device it does not know.

    ## What it does
    - `Accelerator(mixed_precision="fp16")` when the script has a `GradScaler` or an fp16 autocast,
      `"bf16"` when its autocast asks for `dtype=torch.bfloat16`. An `enabled=` flag is carried over:
      `GradScaler(enabled=use_amp)` gives `mixed_precision="fp16" if use_amp else "no"`.
    - So does a scaler made under a condition, `scaler = GradScaler() if args.amp else None` (or
      `None if ... else GradScaler()`): `mixed_precision="fp16" if args.amp else "no"`.
    - A `GradScaler` that never scales a loss, in a file with no autocast, is left as it is (a note says so): the
      script trains in full precision, and `mixed_precision="fp16"` would change that. Tests of whether it exists,
      `if scaler is not None:` (`is None`, `if scaler:`, `not scaler`), become
      `if accelerator.mixed_precision == "fp16":` (`!=`), and `autocast(enabled=scaler is not None)` follows the
      same condition. Such a scaler passed to a function keeps the script's mixed precision as it is, with a
      diagnostic naming the call.
    - `with torch.cuda.amp.autocast():`, `with torch.autocast(device_type="cuda", dtype=...):`,
      `torch.amp.autocast("cuda")` become `with accelerator.autocast():`.
    - `scaler.scale(loss).backward()` becomes `accelerator.backward(loss)` (with AC004), `scaler.step(optimizer)`
      becomes `optimizer.step()` (a prepared optimizer skips the step when fp16 gradients overflow),
      `scaler.update()` and `scaler.unscale_(optimizer)` go away (`accelerator.clip_grad_norm_` unscales, AC013),
      and so does `scaler = GradScaler(...)` (or `self.scaler = GradScaler(...)` in a trainer class).
    - The scaler's state in checkpoints goes to the accelerator's scaler, `accelerator.scaler`, which exists only
      under fp16 (it is `None` without it, under DeepSpeed, which scales the loss itself, and under Hugging Face
      Accelerate on the CPU). `scaler.state_dict()` (in a checkpoint dictionary, given to `torch.save`)
      becomes `accelerator.scaler.state_dict() if accelerator.scaler is not None else {}`: `{}` is what a
      disabled `GradScaler` saves. `scaler.load_state_dict(state)`, a statement of its own, becomes the same call
      on `accelerator.scaler` under `if accelerator.scaler is not None:`, as a disabled `GradScaler` ignores what
      it is given. A checkpoint saved without fp16 and resumed with it fails as it did before (an enabled
      `GradScaler` refuses the empty state).
    - A scaler used in any other way (`get_scale()`, passed to a function, a `load_state_dict(...)` whose result
      is used, its state saved or loaded where the accelerator does not exist yet) keeps the whole script's mixed precision as it
      is, with a diagnostic.
    - So does an `enabled=` flag that reads names set after the accelerator must be created (typically
      `enabled=device_type == "cuda"` with `device_type` derived from the device), or names the accelerator's scope
      does not have (a helper's `amp` parameter when the accelerator is created in `__main__`): the precision would
      otherwise be lost, or break, on the way into `Accelerator(...)`.

    **Unsafe** (in ruff's sense): on a device where the original autocast did nothing (a CUDA autocast on the
    CPU) the accelerator's autocast is active, unless the `enabled=` flag turns it off there.

    ## Example
    ```python
    scaler = torch.cuda.amp.GradScaler()
    for x, y in loader:
        optimizer.zero_grad()
        with torch.cuda.amp.autocast():
            loss = criterion(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    ```
    becomes
    ```python
    for x, y in loader:
        optimizer.zero_grad()
        with accelerator.autocast():
            loss = criterion(model(x), y)
        accelerator.backward(loss)
        optimizer.step()
    ```
    with `accelerator = Accelerator(mixed_precision="fp16")`, and a checkpoint that holds the scaler's state
    ```python
    torch.save({"model": model.state_dict(), "scaler": scaler.state_dict()}, path)
    ...
    scaler.load_state_dict(checkpoint["scaler"])
    ```
    becomes
    ```python
    accelerator.save({"model": accelerator.unwrap_model(model).state_dict(), "scaler": accelerator.scaler.state_dict() if accelerator.scaler is not None else {}}, path)
    ...
    if accelerator.scaler is not None:
        accelerator.scaler.load_state_dict(checkpoint["scaler"])
    ```
    """

    code = "AC014"
    name = "mixed-precision"
    summary = "Replace a hand-written `GradScaler` and `autocast` by the accelerator's mixed precision."
    unsafe = True
    notes = ("a `GradScaler` that never scales a loss, with no autocast in the file: the script trains in full precision, so nothing changes",)

    def needs(self, decisions):
        analysis = decisions.analysis
        locations = analysis.facts.statement_locations
        return [(scope, locations[id(_with_statement(analysis, call))]) for scope, call in _autocasts(analysis)]

    def plan(self, context, plan):
        analysis = context.analysis
        scalers = _scalers(analysis)
        autocasts = list(_autocasts(analysis))
        if not scalers and not autocasts:
            return
        uses = {id(s): [] for s in scalers}
        odd = []
        for site in analysis.facts.calls:
            func = site.node.func
            if not isinstance(func, cst.Attribute):
                continue
            scaler = next((s for s in scalers if _names(analysis, site.scope, func.value, s)), None)
            if scaler is None:
                continue
            if func.attr.value in _STEPPING or _state_use(context, site) is not None:
                uses[id(scaler)].append(site)
            else:
                odd.append(site)
        if not autocasts and not any(site.node.func.attr.value == "scale" for sites in uses.values() for site in sites):
            message = (
                "`GradScaler` left as is: it never scales a loss and nothing runs under autocast, so the script trains "
                "in full precision, as the converted one does"
            )
            plan.diagnostics.append(context.note(self.code, scalers[0].statement, message))
            return
        loads = [load for load in analysis.facts.loads if any(_names_load(analysis, load, s) for s in scalers)]
        loads += _attribute_reads(analysis, scalers)
        tests, unreachable = _presence_tests(context, scalers)
        flags = [call for scope, call in autocasts if _presence_flag(analysis, scope, call, scalers)]
        if unreachable is not None:
            message = (
                f"mixed precision left as is: `{context.code(unreachable.test)}` tests whether the optional "
                "`GradScaler` exists where the accelerator cannot be reached, so it cannot become "
                "`accelerator.mixed_precision == \"fp16\"`"
            )
            plan.diagnostics.append(context.diagnostic(self.code, unreachable, message))
            return
        conditional = next((s for s in scalers if s.condition is not None), None)
        passed = _passed_to(analysis, scalers)
        if passed is not None:
            scaler, call = passed
            made = "" if scaler.condition is None else f" (made only when `{context.code(scaler.condition)}`)"
            message = (
                f"mixed precision left as is: the `GradScaler` `{scaler.name}`{made} is passed to "
                f"`{context.code(call.func)}(...)`, which the rewrite does not follow (the script keeps its own loss "
                "scaling and autocast); to convert it, stop passing it and let the accelerator scale the loss "
                "(`Accelerator(mixed_precision=...)`, `accelerator.backward(loss)`, `optimizer.step()`)"
            )
            plan.diagnostics.append(context.diagnostic(self.code, call, message))
            return
        if conditional is not None and _keyword(conditional.call, "enabled") is not None:
            message = (
                f"mixed precision left as is: the `GradScaler` `{conditional.name}` is both optional and has an "
                "`enabled=` flag"
            )
            plan.diagnostics.append(context.diagnostic(self.code, conditional.statement, message))
            return
        if odd or len(loads) != sum(len(v) for v in uses.values()) + len(tests) + len(flags):
            node = odd[0].node if odd else scalers[0].statement
            message = (
                "mixed precision left as is: the `GradScaler` is used beyond scale/step/update/unscale_ and its "
                "state in checkpoints (use `accelerator.scaler`)"
            )
            if odd and _state_shape(odd[0]):
                message = (
                    "mixed precision left as is: the `GradScaler`'s state is saved or loaded where the accelerator "
                    "does not exist yet (use `accelerator.scaler` once it does)"
                )
            plan.diagnostics.append(context.diagnostic(self.code, node, message))
            return
        mode, enabled = _mode(analysis, scalers, [call for _, call in autocasts])
        home = context.access.home
        names = free_names(enabled)
        if enabled is not None and (
            not _visible(analysis, home, names) or defined_after(analysis, home, names, *context.access.position)
        ):
            node = autocasts[0][1] if autocasts else scalers[0].statement
            message = (
                f"mixed precision left as is: `enabled={context.code(enabled)}` reads names not set where the accelerator "
                "is created (or set only after it), so it cannot become `Accelerator(mixed_precision=...)`"
            )
            plan.diagnostics.append(context.diagnostic(self.code, node, message))
            return
        argument = f'"{mode}"' if enabled is None else f'"{mode}" if {context.code(enabled)} else "no"'
        context.accelerator_arguments.append((f"mixed_precision={argument}", free_names(enabled)))
        for node, statement, scope, location, positive, accelerator in tests:
            compare = "==" if positive else "!="
            plan.expression(node.test, ReplaceWith(f'{accelerator}.mixed_precision {compare} "fp16"'), statement)
            context.use(scope, location)
            plan.changes.append(context.change(self.code, node.test, f"`{context.code(node.test)}` -> `{accelerator}.mixed_precision {compare} \"fp16\"`", statement))
        for scaler in scalers:
            plan.statement(scaler.statement).remove = True
            plan.changes.append(context.change(self.code, scaler.statement, f"`{scaler.name}` removed: the accelerator scales the loss"))
            for site in uses[id(scaler)]:
                self._rewrite_use(context, plan, site)
        for scope, call in autocasts:
            accelerator = context.access.expression(scope)
            if accelerator is None:
                plan.diagnostics.append(context.diagnostic(self.code, call, f"autocast left as is: `{scope.name}` cannot reach the accelerator"))
                continue
            statement = _with_statement(analysis, call)
            plan.expression(call, ReplaceWith(f"{accelerator}.autocast()"), statement)
            context.use(scope, analysis.facts.statement_locations[id(statement)])
            plan.changes.append(context.change(self.code, call, f"`{context.code(call.func)}` -> `{accelerator}.autocast()`"))

    def _rewrite_use(self, context, plan, site) -> None:
        call = site.node
        method = call.func.attr.value
        state = _state_use(context, site)
        if method == "state_dict" and state is not None:
            code = f"{state}.scaler.state_dict() if {state}.scaler is not None else {{}}"
            if not isinstance(_parent(site.statement, call), _BARE_PARENTS):
                code = f"({code})"
            plan.expression(call, ReplaceWith(code), site.statement)
            context.use(site.scope, site.location)
            plan.changes.append(context.change(self.code, call, f"scaler state saved from `{state}.scaler` ({{}} without fp16)"))
        elif method == "load_state_dict" and state is not None:
            plan.expression(call.func.value, ReplaceWith(f"{state}.scaler"), site.statement)
            plan.expression(site.statement, GuardScaler(state), site.statement)
            context.use(site.scope, site.location)
            plan.changes.append(context.change(self.code, call, f"scaler state loaded into `{state}.scaler` when it has one"))
        elif method == "scale" and call.args:
            plan.expression(call, ReplaceWith(context.code(call.args[0].value)), site.statement)
            plan.changes.append(context.change(self.code, call, "loss scaling left to the accelerator"))
        elif method == "step" and call.args:
            optimizer = context.code(call.args[0].value)
            plan.expression(call, ReplaceWith(f"{optimizer}.step()"), site.statement)
            plan.changes.append(context.change(self.code, call, f"`scaler.step({optimizer})` -> `{optimizer}.step()`"))
        elif isinstance(site.statement, cst.SimpleStatementLine) and len(site.statement.body) == 1:
            plan.statement(site.statement).remove = True
            plan.changes.append(context.change(self.code, call, f"`{context.code(call.func)}()` removed"))


def _state_use(context, site) -> str | None:
    """The accelerator's expression when ``site`` saves or restores the scaler's state (``_state_shape``) where the
    accelerator exists."""
    return context.access.reachable(site.scope, site.location) if _state_shape(site) else None


def _state_shape(site) -> bool:
    """``scaler.state_dict()`` anywhere, or ``scaler.load_state_dict(x)`` as a statement of its own."""
    call = site.node
    method = call.func.attr.value
    if method == "state_dict":
        return not call.args
    if method != "load_state_dict":
        return False
    statement = site.statement
    single = isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1
    return single and isinstance(statement.body[0], cst.Expr) and statement.body[0].value is call and len(call.args) == 1


def _parent(statement: cst.CSTNode, node: cst.CSTNode) -> cst.CSTNode | None:
    """The node directly holding ``node`` inside ``statement``."""
    found: list[cst.CSTNode] = []
    stack: list[cst.CSTNode] = []

    class _Find(Walker):
        def walk(self, current: cst.CSTNode) -> None:
            if found:
                return
            if current is node:
                found.append(stack[-1])
                return
            stack.append(current)
            super().walk(current)
            stack.pop()

    _Find().walk(statement)
    return found[0] if found else None


def _scalers(analysis) -> list[_Scaler]:
    found = []
    for assignment in analysis.facts.assignments:
        call, condition = _scaler_value(analysis, assignment.value)
        if call is not None and len(assignment.targets) == 1:
            key = dotted_name(assignment.targets[0])
            statement = assignment.statement
            if key is not None and len(statement.body) == 1:
                found.append(_Scaler(key, assignment.scope, statement, call, condition))
    return found


def _scaler_value(analysis, value) -> tuple[cst.Call | None, cst.BaseExpression | None]:
    """(the ``GradScaler(...)`` call, the condition under which it is made) of ``GradScaler(...)`` (no condition),
    ``GradScaler(...) if c else None`` (``c``) and ``None if c else GradScaler(...)`` (``not c``)."""
    if isinstance(value, cst.Call) and analysis.qualify(value.func) in symbols.GRAD_SCALERS:
        return value, None
    if not isinstance(value, cst.IfExp):
        return None, None
    test = value.test
    for made, other, negated in ((value.body, value.orelse, False), (value.orelse, value.body, True)):
        if isinstance(made, cst.Call) and analysis.qualify(made.func) in symbols.GRAD_SCALERS and _is_none(other):
            if not negated:
                return made, test
            if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not) and not test.lpar:
                return made, test.expression  # ``None if not c else GradScaler()``: made when ``c``
            if isinstance(test, (cst.BooleanOperation, cst.IfExp, cst.Lambda, cst.NamedExpr)) and not test.lpar:
                test = test.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
            return made, cst.UnaryOperation(cst.Not(), test)
    return None, None


def _presence_tests(context, scalers):
    """The ``if`` statements whose test is a presence test of an optional scaler (``_presence_test``), as
    (if node, its statement, scope, location, positive, the accelerator's expression there), and the first such
    ``if`` that cannot reach the accelerator (None when all can)."""
    analysis = context.analysis
    found = []
    if not any(s.condition is not None for s in scalers):
        return found, None
    for node, scope, location in analysis.facts.if_statements:
        test = _presence_test(analysis, scope, node.test, scalers)
        if test is None:
            continue
        statement = analysis.facts.statement_at(*location[-1]) if location and location[-1][1] >= 0 else None
        if statement is not node:
            continue  # an ``elif``: its test is not part of its statement's header, the count of uses flags it
        accelerator = context.access.reachable(scope, location)
        if accelerator is None:
            return found, node
        found.append((node, statement, scope, location, test[1], accelerator))
    return found, None


def _presence_flag(analysis, scope, call, scalers) -> bool:
    """``autocast(enabled=scaler is not None)`` with an optional scaler: the flag the scaler's condition replaces."""
    enabled = _keyword(call, "enabled")
    test = None if enabled is None else _presence_test(analysis, scope, enabled, scalers)
    return test is not None and test[1]


def _passed_to(analysis, scalers) -> tuple[_Scaler, cst.Call] | None:
    """The first scaler passed (by its name) as an argument of a call, with that call."""
    for site in analysis.facts.calls:
        for arg in site.node.args:
            scaler = next((s for s in scalers if _names(analysis, site.scope, arg.value, s)), None)
            if scaler is not None:
                return scaler, site.node
    return None


def _is_none(node) -> bool:
    return isinstance(node, cst.Name) and node.value == "None"


def _presence_test(analysis, scope, node, scalers) -> tuple[_Scaler, bool] | None:
    """(the conditional scaler, True when ``node`` is true with it) for ``scaler is not None``, ``scaler is None``,
    ``scaler`` or ``not scaler`` naming a scaler made as ``GradScaler() if c else None``."""
    positive = True
    while isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Not):
        node, positive = node.expression, not positive
    if isinstance(node, cst.Comparison) and len(node.comparisons) == 1 and _is_none(node.comparisons[0].comparator):
        operator = node.comparisons[0].operator
        if not isinstance(operator, (cst.Is, cst.IsNot)):
            return None
        node, positive = node.left, positive == isinstance(operator, cst.IsNot)
    scaler = next((s for s in scalers if s.condition is not None and _names(analysis, scope, node, s)), None)
    return None if scaler is None else (scaler, positive)


def _names(analysis, scope, node, scaler: _Scaler) -> bool:
    key = dotted_name(node)
    return key == scaler.name and analysis.binding(scope, key) == analysis.binding(scaler.scope, key)


def _names_load(analysis, load, scaler: _Scaler) -> bool:
    root = scaler.name.split(".")[0]
    if load.name != root or "." in scaler.name:
        return False
    if load.location == analysis.facts.statement_locations.get(id(scaler.statement)):
        return False
    return analysis.binding(load.scope, root) == analysis.binding(scaler.scope, root)


def _attribute_reads(analysis, scalers: list[_Scaler]) -> list:
    """Reads of a scaler kept in an attribute (``self.scaler``), and reads of any attribute of that name through
    another object (``trainer.scaler``), which the rewrite cannot follow: both count as uses to account for."""
    attributes = {s.name.rsplit(".", 1)[1] for s in scalers if "." in s.name}
    return [
        read
        for read in analysis.facts.attribute_reads
        if read.node.attr.value in attributes
        and (dotted_name(read.node) not in {s.name for s in scalers} or any(_names(analysis, read.scope, read.node, s) for s in scalers))
    ]


def _autocasts(analysis):
    """(scope, call) of every ``with`` item that enters an autocast context."""
    for site in analysis.facts.calls:
        statement = site.statement
        if isinstance(statement, cst.With) and analysis.qualify(site.node.func) in AUTOCASTS:
            if any(item.item is site.node for item in statement.items):
                yield site.scope, site.node


def _with_statement(analysis, call):
    return next(s.statement for s in analysis.facts.calls if s.node is call)


def _keyword(call: cst.Call, name: str):
    return next((a.value for a in call.args if a.keyword is not None and a.keyword.value == name), None)


def _mode(analysis, scalers, autocasts) -> tuple[str, cst.BaseExpression | None]:
    bf16 = any(analysis.qualify(_keyword(call, "dtype") or cst.Name("_")) in _BF16 for call in autocasts)
    mode = "bf16" if bf16 and not scalers else "fp16"
    conditional = next((s.condition for s in scalers if s.condition is not None), None)
    if conditional is not None:
        return mode, conditional
    for call in [s.call for s in scalers] + autocasts:
        enabled = _keyword(call, "enabled")
        if enabled is not None:
            return mode, None if isinstance(enabled, cst.Name) and enabled.value == "True" else enabled
    return mode, None


def _visible(analysis, home, names: set[str]) -> bool:
    """True when every name is bound in ``home`` or a scope around it, imported, or a builtin."""
    bound: set[str] = set()
    scope = home
    while scope is not None:
        bound |= scope.assigned | set(scope.params)
        scope = scope.parent
    return all(
        name in bound or hasattr(builtins, name) or analysis.qualify(cst.Name(name)) is not None for name in names
    )
