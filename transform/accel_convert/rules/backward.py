"""AC004 backward."""

from __future__ import annotations

import builtins
import weakref

import libcst as cst

from accel_convert.analysis.expressions import root_name
from accel_convert.analysis.facts import CallSite, Scope, target_names
from accel_convert.analysis.imports import dotted_name
from accel_convert.analysis.roles import ACCELERATOR, DEVICE, MODEL, OPTIMIZER, PREPARED_ROLES, Analysis
from accel_convert.analysis.traverse import Walker
from accel_convert.edits.plan import BackwardThrough
from accel_convert.rules.base import Rule


class Backward(Rule):
    """Call `accelerator.backward(loss)` instead of `loss.backward()`.

    ## Why
    The accelerator scales the loss for mixed precision and gradient accumulation, and lets distributed backends
    (DeepSpeed, FSDP) run their own backward pass. `loss.backward()` bypasses all of that.

    ## What it does
    Every `<expression>.backward(...)` call that trains what `accelerator.prepare` holds becomes
    `accelerator.backward(<expression>, ...)`; keyword arguments such as `retain_graph=True` are kept. Calls on
    imported modules (`torch.autograd.backward(...)`) are left alone. A helper function that cannot see the
    accelerator gets it as a parameter, and a class of the file built where the accelerator is (a `Trainer`
    given the prepared objects) gets it as `self.accelerator` (see AC001).

    The differentiated tensor is followed back through the assignments of its function (and what method calls such
    as `losses.append(loss)` put into the names it reads): it is rewritten when it is
    computed from a prepared model or optimizer, or from something the tool cannot follow (a parameter, a loop
    variable, an attribute, a function of the file). It is left as is, with no diagnostic, when it is computed only
    from literals and library calls (an autograd demonstration: `y = (x ** 2).sum(); y.backward()`), and with a
    diagnostic when it trains a model that is not prepared, or when AC002 does not add `prepare` at all: the
    accelerator's backward would scale gradients that no prepared optimizer unscales.

    ## Example
    ```python
    loss = criterion(model(data), target)
    loss.backward()
    (loss_a + loss_b).backward(retain_graph=True)
    ```
    becomes
    ```python
    loss = criterion(model(data), target)
    accelerator.backward(loss)
    accelerator.backward(loss_a + loss_b, retain_graph=True)
    ```
    """

    code = "AC004"
    name = "backward"
    summary = "Call `accelerator.backward(loss)` instead of `loss.backward()`."
    guarded_by = ("backward-unwrapped",)
    notes = ("`loss.backward()` left as is because AC002 did not add `accelerator.prepare` (AC002's diagnostic says why and what to do)",)

    def needs(self, decisions):
        return [(site.scope, site.location) for site in decisions.analysis.backward_calls if _trains_prepared(decisions.analysis, decisions.prepared, site) is True]

    def plan(self, context, plan):
        for site in context.analysis.backward_calls:
            verdict = _trains_prepared(context.analysis, context.decisions.prepared, site)
            if verdict is not True:
                if verdict is not None:
                    report = context.note if verdict == _NOT_PREPARED else context.diagnostic  # AC002 says what to do
                    plan.diagnostics.append(report(self.code, site.node, f"`{context.code(site.node)}` left as is: {verdict}"))
                continue
            accelerator = context.access.expression(site.scope)
            receiver = context.code(site.node.func.value.with_changes(lpar=[], rpar=[]))
            if accelerator is None:
                plan.diagnostics.append(
                    context.diagnostic(
                        self.code,
                        site.node,
                        f"`{context.code(site.node.func.value)}.backward()` left as is: `{site.scope.name}` cannot reach the accelerator",
                    )
                )
                continue
            plan.expression(site.node, BackwardThrough(accelerator), site.statement)
            context.use(site.scope, site.location)
            plan.changes.append(
                context.change(self.code, site.node, f"`{context.code(site.node.func.value)}.backward()` -> `{accelerator}.backward({receiver})`")
            )


def _trains_prepared(analysis: Analysis, prepared: set, site: CallSite) -> bool | str | None:
    """True when the backward is to be rewritten; a reason (str) when it is left with a diagnostic; None when it is
    left silently (a tensor computed from literals and library calls only)."""
    index = _Index.of(analysis)
    key = (site, frozenset(prepared))
    if key not in index.verdicts:
        index.verdicts[key] = _verdict(analysis, prepared, index, site)
    return index.verdicts[key]


def _verdict(analysis: Analysis, prepared: set, index: _Index, site: CallSite) -> bool | str | None:
    trace = _Trace(analysis, prepared, index)
    trace.expression(site.scope, site.node.func.value)
    if trace.prepared:
        return True
    if not prepared and (trace.unknown or trace.unprepared):
        return _NOT_PREPARED
    if trace.unprepared:
        names = ", ".join(sorted(f"`{key}`" for _, key in trace.unprepared))
        return f"it trains {names}, which `accelerator.prepare` does not hold; prepare it to train it with the accelerator"
    return True if trace.unknown else None


_NOT_PREPARED = "`accelerator.prepare` is not added (see AC002), and `accelerator.backward` needs the prepared optimizer"
_INDEXES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # Analysis -> _Index


class _Index:
    """What the traces of one module look up, built once for ``needs()`` and ``plan()``: assignments and method
    calls by the root name they change, names bound otherwise than by assignment, and the verdicts."""

    def __init__(self, analysis: Analysis) -> None:
        self.assignments: dict[tuple[Scope, str], list] = {}
        for assignment in analysis.facts.assignments:
            for root in _assigned_roots(assignment):
                self.assignments.setdefault((assignment.scope, root), []).append(assignment)
        self.method_calls: dict[str, list[CallSite]] = {}
        for site in analysis.facts.calls:
            if isinstance(site.node.func, cst.Attribute) and site.node.args:
                root = root_name(site.node.func.value)
                if root is not None:
                    self.method_calls.setdefault(root, []).append(site)
        self.local_callables = set(analysis.facts.functions) | set(analysis.facts.classes)
        self.other_binders: dict[Scope, set[str]] = {}
        self.verdicts: dict[tuple, bool | str | None] = {}  # (site, prepared bindings) -> verdict

    @classmethod
    def of(cls, analysis: Analysis) -> _Index:
        index = _INDEXES.get(analysis)
        if index is None:
            index = _INDEXES[analysis] = cls(analysis)
        return index

    def bound_otherwise(self, scope: Scope) -> set[str]:
        names = self.other_binders.get(scope)
        if names is None:
            finder = _OtherBinders(scope.node)
            finder.walk(scope.node)
            names = self.other_binders[scope] = finder.names | self.local_callables
        return names


class _Trace:
    """Follows a tensor back through the plain assignments of its scope to the objects it is computed from."""

    def __init__(self, analysis: Analysis, prepared: set, index: _Index) -> None:
        self.analysis = analysis
        self.prepared_bindings = prepared
        self.index = index
        self.prepared: set = set()  # bindings of prepared objects it is computed from
        self.unprepared: set = set()  # models and optimizers it is computed from that are not prepared
        self.unknown = False  # computed (also) from something this cannot follow
        self._seen: set[int] = set()

    def expression(self, scope: Scope, node: cst.BaseExpression) -> None:
        if id(node) in self._seen:
            return
        self._seen.add(id(node))
        reads = _Reads()
        reads.walk(node)
        for key in reads.keys:
            self._key(scope, key)

    def _key(self, scope: Scope, key: str) -> None:
        analysis = self.analysis
        parts = key.split(".")
        for count in range(len(parts), 0, -1):
            binding = analysis.binding(scope, ".".join(parts[:count]))
            role = analysis.roles.get(binding)
            if binding in self.prepared_bindings:
                self.prepared.add(binding)
                return
            if role in (MODEL, OPTIMIZER):
                self.unprepared.add(binding)
                return
            if role in PREPARED_ROLES or binding in analysis.candidates:
                self.unknown = True
                return
            if role in (DEVICE, ACCELERATOR):
                return  # where tensors go, not what they are computed from
        root = parts[0]
        if analysis.qualify(cst.Name(root)) is not None or (hasattr(builtins, root) and root not in scope.assigned):
            return  # an imported module or function, or a builtin
        holder, _ = analysis.binding(scope, root)
        if not isinstance(holder, Scope) or root in holder.params or root in self.index.bound_otherwise(holder):
            self.unknown = True
            return
        assignments = self.index.assignments.get((holder, root), [])
        if not assignments or any(root not in _plain_targets(a) for a in assignments):
            self.unknown = True  # not assigned here, or changed through an attribute or item (x[0] = ...)
            return
        for assignment in assignments:
            self.expression(holder, assignment.value)
        for site in self.index.method_calls.get(root, ()):  # what a method call may put in it: losses.append(loss)
            if analysis.binding(site.scope, root) == (holder, root):
                for arg in site.node.args:
                    self.expression(site.scope, arg.value)


def _assigned_roots(assignment) -> set[str]:
    roots = set()
    for target in assignment.targets:
        node = target
        while isinstance(node, (cst.Attribute, cst.Subscript)):
            node = node.value
        roots.update(target_names(node) if isinstance(node, cst.Name) else target_names(target))
    return roots


def _plain_targets(assignment) -> set[str]:
    return {name for target in assignment.targets for name in target_names(target)}


class _Reads(Walker):
    """The dotted names an expression reads: ``criterion(model(x), y)`` -> criterion, model, x, y."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        key = dotted_name(node)
        if key is not None:
            self.keys.append(key)
        else:
            self.walk(node.value)
        return False

    def visit_Name(self, node: cst.Name) -> None:
        self.keys.append(node.value)


class _OtherBinders(Walker):
    """Names a scope's statements bind other than by a one-target assignment (loops, ``+=``, ``with ... as``, ...)."""

    def __init__(self, root: cst.CSTNode) -> None:
        self.root = root
        self.names: set[str] = set()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return node is self.root

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False

    def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> bool:
        for small in node.body:
            if isinstance(small, cst.Assign) and len(small.targets) > 1:
                self.names.update(name for target in small.targets for name in target_names(target.target))
            elif isinstance(small, cst.AugAssign):
                self.names.update(target_names(small.target))
            elif isinstance(small, (cst.Global, cst.Nonlocal)):
                self.names.update(item.name.value for item in small.names)
        return False  # no need to look into expressions

    def visit_For(self, node: cst.For) -> None:
        self.names.update(target_names(node.target))

    def visit_WithItem(self, node: cst.WithItem) -> None:
        if node.asname is not None:
            self.names.update(target_names(node.asname.name))

    def visit_ExceptHandler(self, node: cst.ExceptHandler) -> None:
        if node.name is not None:
            self.names.update(target_names(node.name.name))

