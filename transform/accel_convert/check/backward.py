"""Invariant 3: the loss reaches ``accelerator.backward`` through the prepared model.

Two shapes bypass the wrapper that synchronises gradients, so each process trains alone and the weights drift apart:

- a loss computed through ``accelerator.unwrap_model(m).method(...)`` (or ``unwrap_model(m)(...)``, or a name bound to
  it, or ``m.module``);
- a loss computed through a name that still holds the model as it was before ``prepare``: the result bound to another
  name (``model_without_ddp = accelerator.prepare(model)`` while the loop trains ``model``), or to nothing.

The loss's computation is followed back from the argument of each ``accelerator.backward``: through the assignments
of its scope and into the return values of the file's own functions.
"""

from __future__ import annotations

import ast

from accel_convert.check.flow import UNWRAP, Flow
from accel_convert.check.scopes import Scope, dotted, key_of, target_paths

# methods of a module that do not run its forward pass
HARMLESS = frozenset(
    "parameters named_parameters buffers named_buffers state_dict modules named_modules children named_children "
    "train eval to cpu cuda half float double bfloat16 get_submodule zero_grad requires_grad_ apply".split()
)


def _is_unwrap(node) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    return (isinstance(func, ast.Attribute) and func.attr in UNWRAP) or (
        isinstance(func, ast.Name) and func.id in UNWRAP
    )


def _walk_outside_prepare(flow: Flow, scope, expr):
    """The nodes of ``expr`` (as ``ast.walk``), without the arguments of an ``accelerator.prepare(...)`` call: what
    prepare returns is the prepared object, whatever its inputs were computed with (``optimizer =
    raw_model.configure_optimizers()`` does not compute the loss)."""
    stack = [expr]
    while stack:
        node = stack.pop()
        yield node
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "prepare"
            and flow.is_accelerator(scope, node.func.value)
        ):
            continue
        stack.extend(ast.iter_child_nodes(node))


def loss_calls(flow: Flow) -> dict:
    """id(call) -> (call, scope) for every call the arguments of ``accelerator.backward`` are computed with."""
    found: dict = {}
    seen: set = set()
    stack = []
    for site in flow.p.calls_by_name.get("backward", ()):
        func = site.node.func
        if isinstance(func, ast.Attribute) and flow.is_accelerator(site.scope, func.value):
            stack.extend((site.scope, arg) for arg in site.node.args)
    while stack:
        scope, expr = stack.pop()
        if id(expr) in seen:
            continue
        seen.add(id(expr))
        for node in _walk_outside_prepare(flow, scope, expr):
            if isinstance(node, ast.Call):
                found[id(node)] = (node, scope)
                for callee in flow.callees(scope, node):
                    if isinstance(callee, Scope):
                        stack.extend((callee, value) for value in callee.returns)
            elif isinstance(node, (ast.Name, ast.Attribute)) and isinstance(node.ctx, ast.Load):
                key = key_of(node, scope)
                if key is None or key == scope.self_name:
                    continue
                for definition in flow.lookup(scope, key, node):
                    if definition.kind in ("assign", "aug"):
                        stack.append((definition.scope, definition.value))
                    for previous in definition.prev:
                        stack.append((previous.scope, previous.value))
    return found


def _unwrapped_model(flow: Flow, scope, call) -> str | None:
    """The model a loss call goes around the wrapper of, as named in the code; None if it goes through it."""
    func = call.func
    if _is_unwrap(func):
        return dotted(func.args[0]) if func.args else "?"
    if not isinstance(func, ast.Attribute) or func.attr in HARMLESS:
        base = func
    else:
        base = func.value
    if _is_unwrap(base):
        return dotted(base.args[0]) if base.args else "?"
    if isinstance(base, ast.Attribute) and base.attr == "module":
        if any(o[0] == "prepared" for o in flow.origins(scope, base.value)):
            return dotted(base.value)
    if key_of(base, scope) is not None and not (isinstance(func, ast.Attribute) and func.attr in HARMLESS):
        for origin in flow.origins(scope, base):
            if origin[0] == "unwrapped" and origin[1] is not None:
                return dotted(origin[1]) or "?"
    return None


def _roots(calls) -> set:
    """id of every name a forward-running call in ``calls`` is called on (``model`` in ``model(x)``,
    ``model.forward(x)``, ``self.model.encode(x)``)."""
    roots = set()
    for call, _ in calls.values():
        node = call.func
        if isinstance(node, ast.Attribute) and node.attr in HARMLESS:
            continue
        while True:
            roots.add(id(node))
            if isinstance(node, ast.Attribute):
                node = node.value
            else:
                break
    return roots


def _creations(flow: Flow, scope, node, depth=0) -> frozenset:
    """The definitions a name's value was made by, through plain copies (``a = b``)."""
    key = key_of(node, scope)
    if key is None or depth > 20:
        return frozenset()
    found = set()
    for definition in flow.lookup(scope, key, node):
        value = definition.value
        if definition.kind == "assign" and not definition.path and key_of(value, definition.scope) is not None:
            found |= _creations(flow, definition.scope, value, depth + 1) or {definition}
        else:
            found.add(definition)
    return frozenset(found)


class _Stale:
    def __init__(self, flow: Flow, roots: set):
        self.flow, self.roots = flow, roots
        self.memo: dict = {}

    def trains(self, scope, node, depth=0) -> bool:
        """A read of the model trains it: it is called on the loss's path, or handed to a function that does."""
        if id(node) in self.roots:
            return True
        where = self.flow.p.argument_of.get(id(node))
        if where is None or depth > 4:
            return False
        call, position = where
        for callee in self.flow.callees(scope, call):
            if isinstance(callee, ast.ClassDef):
                callee = self.flow.method(callee, "__init__")
            if not isinstance(callee, Scope):
                continue
            params = [a.arg for a in (*callee.node.args.posonlyargs, *callee.node.args.args)]
            offset = 1 if callee.self_name is not None else 0
            if isinstance(position, int):
                name = params[position + offset] if position + offset < len(params) else None
            else:
                name = position
            if name is not None and self.param_trains(callee, name, depth + 1):
                return True
        return False

    def param_trains(self, scope, name, depth) -> bool:
        memo = (id(scope), name)
        if memo in self.memo:
            return self.memo[memo]
        self.memo[memo] = False
        result = any(key == name and self.trains(scope, node, depth) for key, node in scope.loads)
        if not result and scope.cls is not None:  # self.model = model, then self.model(x) in another method
            attributes = {
                key
                for key, defs in scope.defs.items()
                if key.startswith("self.")
                for d in defs
                if d.kind == "assign" and isinstance(d.value, ast.Name) and d.value.id == name and not d.path
            }
            for method in scope.cls.methods.values():
                if any(key in attributes and self.trains(method, node, depth) for key, node in method.loads):
                    result = True
                    break
        self.memo[memo] = result
        return result


def _reads_after(flow: Flow, scope, end: int):
    """Reads in ``scope`` after line ``end``, and reads in other functions of names they take from ``scope``
    (a global, a closure's variable): those see what ``scope`` holds at its end."""
    for key, node in scope.loads:
        if node.lineno > end:
            yield scope, key, node
    for other in flow.p.scopes:
        if other is scope or other.class_body:
            continue
        parent = other.parent
        while parent is not None and parent is not scope:
            parent = parent.parent
        if parent is None:
            continue
        for key, node in other.loads:
            if not key.startswith("self.") and key not in other.defs and key in scope.defs:
                yield other, key, node


def _targets(statement, call):
    """The target nodes the elements of a prepare result are bound to (None where the result is dropped)."""
    if isinstance(statement, ast.Assign) and statement.value is call and len(statement.targets) == 1:
        target = statement.targets[0]
        if isinstance(target, (ast.Tuple, ast.List)):
            return [element for element, _ in target_paths(target)] if len(target.elts) == len(call.args) else None
        return [target] if len(call.args) == 1 else None
    if isinstance(statement, ast.Expr) and statement.value is call:
        return [None] * len(call.args)
    return None


def backward_through_unwrapped(flow: Flow):
    from accel_convert.check import Violation

    found = []
    calls = loss_calls(flow)
    for call, scope in calls.values():
        model = _unwrapped_model(flow, scope, call)
        if model is not None:
            found.append(
                Violation(
                    "backward-unwrapped",
                    None if model == "?" else model,
                    call.lineno,
                    f"backward-unwrapped: the loss passed to `accelerator.backward` is computed through the "
                    f"unwrapped `{model}` (`{ast.unparse(call.func)}`), which bypasses the gradient "
                    f"synchronisation of the prepared model (only a call of the model itself, `{model}(...)`, "
                    "synchronises it: compute the loss's inputs in `forward`)",
                    scope.qualname,
                )
            )
    if not calls:
        return found
    stale = _Stale(flow, _roots(calls))
    for site in flow.prepare_calls():
        targets = _targets(site.statement, site.node)
        if targets is None:
            continue
        scope = site.scope
        end = getattr(site.statement, "end_lineno", site.node.lineno)
        reads = [read for read in _reads_after(flow, scope, end) if stale.trains(read[0], read[2])]
        for arg, target in zip(site.node.args, targets):
            key = key_of(arg, scope)
            if key is None:
                continue
            made = _creations(flow, scope, arg)
            target_key = None if target is None else key_of(target, scope)
            for where, read_key, node in reads:
                if read_key == target_key and where is scope:
                    continue
                if _creations(flow, where, node) & made:
                    kept = f"`{target_key}`" if target_key else "nothing"
                    found.append(
                        Violation(
                            "backward-unwrapped",
                            key,
                            node.lineno,
                            f"backward-unwrapped: the loss is computed through `{read_key}`, the model as it was "
                            f"before `accelerator.prepare`, whose result is bound to {kept}: gradients are not "
                            "synchronised across processes",
                            scope.qualname,
                        )
                    )
                    break
    return found
