"""Invariant 5: no removed device move of an unprepared object.

A ``.to(device)`` / ``.cuda()`` of the original that is gone from the converted code must have been on an object that
``prepare`` now places (a model, or a name its value flows through: a factory's local, a ``self.model``) or on a
batch of a prepared loader (the prepared loader yields it on the device). Anything else (a batch of a loader left
unprepared, a tensor the script makes, a loss module with weights) now stays on the CPU.

Moves are matched per function by what they move (``x`` in ``x.to(device)``), so a move rewritten to
``x.to(accelerator.device)`` counts as kept. What a removed move moved is found in the original (its root name, the
name it is assigned to, the loops its batches come from), then looked up in the converted code by the same names.
"""

from __future__ import annotations

import ast
from collections import Counter

from accel_convert.check.flow import RETURNED, Flow
from accel_convert.check.scopes import dotted, key_of

_DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu", "npu", "hpu", "meta")
_DEVICE_WORDS = ("gpu", "rank", "local_rank", "gpu_id", "dev", "gpu_index", "device_id")


def is_device(flow: Flow, scope, node) -> bool:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, str):
            return node.value.split(":")[0] in _DEVICE_TYPES
        return isinstance(node.value, int) and not isinstance(node.value, bool)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.IfExp):
        return is_device(flow, scope, node.body) or is_device(flow, scope, node.orelse)
    if isinstance(node, ast.Call):
        return (flow.p.qualify(node.func) or "").endswith("device")
    name = dotted(node)
    if name is None:
        return False
    last = name.rsplit(".", 1)[-1].lower()
    if "device" in last or last in _DEVICE_WORDS:
        return True
    for origin in flow.origins(scope, node):
        if origin[0] == "const" and isinstance(origin[1], str) and origin[1].split(":")[0] in _DEVICE_TYPES:
            return True
        if origin[0] == "call" and (origin[1] or "").endswith("device"):
            return True
    return False


def is_move(flow: Flow, scope, call: ast.Call) -> bool:
    func = call.func
    if not isinstance(func, ast.Attribute):
        return False
    if func.attr == "cuda":
        return True
    if func.attr != "to":
        return False
    if any(k.arg == "device" for k in call.keywords):
        return True
    positional = [a for a in call.args if not isinstance(a, ast.Starred)]
    return bool(positional) and is_device(flow, scope, positional[0])


def _moves(flow: Flow):
    for name in ("to", "cuda"):
        for site in flow.p.calls_by_name.get(name, ()):
            if is_move(flow, site.scope, site.node):
                yield site


def _root(flow: Flow, scope, node):
    """The name a moved value is reached from (``batch`` in ``batch["x"].float()``); None for a value the
    expression makes (``torch.ones(3)``, ``Net()``)."""
    while True:
        key = key_of(node, scope)
        if key is not None:
            if isinstance(node, ast.Name):
                kinds = {o[0] for o in flow.origins(scope, node)}
                if kinds and kinds <= {"module", "builtin", "function", "class"}:
                    return None
            return key, node
        if isinstance(node, (ast.Attribute, ast.Subscript)):
            node = node.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            node = node.func.value
        else:
            return None


def _on_spine(value, call) -> bool:
    """``call`` is what ``value`` evaluates to, up to method calls, attributes and subscripts on it."""
    while True:
        if value is call:
            return True
        if isinstance(value, (ast.Attribute, ast.Subscript)):
            value = value.value
        elif isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute):
            value = value.func.value
        else:
            return False


def _assigned_keys(scope, statement, call):
    if not isinstance(statement, ast.Assign):
        return []
    keys = []
    for target in statement.targets:
        value = statement.value
        if isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List)):
            for element, item in zip(target.elts, value.elts):
                if _on_spine(item, call) and key_of(element, scope) is not None:
                    keys.append(key_of(element, scope))
        elif _on_spine(value, call) and key_of(target, scope) is not None:
            keys.append(key_of(target, scope))
    return keys


def _iterable_key(node):
    while isinstance(node, ast.Call) and node.args:
        node = node.args[0]
    return dotted(node)


class _Converted:
    """Lookups in the converted module by the original's names."""

    def __init__(self, flow: Flow):
        self.flow = flow
        self.trail: set = set()
        for site in flow.prepare_calls():
            for arg in site.node.args:
                flow.trail(site.scope, arg, (), self.trail)
        self.loops = loops_by_iterable(flow)

    def prepared(self, qualname: str, key: str) -> bool:
        if (qualname, key) in self.trail:
            return True
        for scope in self.flow.p.scope_named(qualname):
            definitions = set(self.flow.lookup(scope, key))
            if key.startswith("self.") and scope.cls is not None:
                for method in scope.cls.methods.values():
                    definitions.update(method.defs.get(key, ()))
            else:
                definitions.update(scope.defs.get(key, ()))
            for definition in definitions:
                if any(o[0] == "prepared" for o in self.flow.def_origins(definition)):
                    return True
        return False

    def loop_prepared(self, qualname: str, iterable, order: tuple[int, int] | None = None):
        """(whether the loop of the original over ``iterable`` iterates a prepared loader here, its line here, and
        (name, scope) of the unprepared loader where it is made, if known). ``order``: (the loop's index among the
        original's loops over the same iterable, their count); with as many loops here, only the loop at that index
        is asked (a peek at the loader before the prepare is not a loop over the prepared loader after it)."""
        line = None
        known = None
        loops = [loop for loop, _ in self.loops.get((qualname, ast.dump(iterable)), ())]
        if order is not None and order[1] == len(loops):
            loops = [loops[order[0]]]
        for loop in loops:
            line = getattr(loop.node, "lineno", loop.iter.lineno)
            status = self.flow.loader_status(loop.scope, loop.iter)
            if status is None:
                continue
            if status[0] == "prepared" or self.flow.conditionally_prepared(loop.scope, status[2]):
                return True, line, None
            known = self.flow.loader_name(loop.scope, status[2], status[1])
        if known:
            return False, line, known
        key = _iterable_key(iterable)
        return (key is not None and self.prepared(qualname, key)), line, None

    def line_of(self, qualname: str, key: str | None) -> int:
        for scope in self.flow.p.scope_named(qualname):
            if key is not None and scope.defs.get(key):
                return getattr(scope.defs[key][0].node, "lineno", 1)
            return getattr(scope.node, "lineno", 1)
        return 1


def loops_by_iterable(flow: Flow) -> dict:
    """(scope qualname, dumped iterable) -> [(loop, the iterable node)] in source order; a loop is listed under its
    iterable and each first argument inside it (``for i, (x, y) in enumerate(loader)``: its batches come from
    ``loader``)."""
    found: dict = {}
    for loop in sorted(flow.p.loops, key=lambda loop: (loop.iter.lineno, loop.iter.col_offset)):
        iterable = loop.iter
        while True:
            found.setdefault((loop.scope.qualname, ast.dump(iterable)), []).append((loop, iterable))
            if not (isinstance(iterable, ast.Call) and iterable.args):
                break
            iterable = iterable.args[0]
    return found


def _order(loops: dict, scope, iterable) -> tuple[int, int] | None:
    """(index, count) of the loop of the original over ``iterable`` among its loops over the same iterable."""
    listed = loops.get((scope.qualname, ast.dump(iterable)), ())
    for index, (_, node) in enumerate(listed):
        if node is iterable:
            return index, len(listed)
    return None


def _marks(site):
    weak = (site.scope.qualname, ast.dump(site.node.func.value))
    return (*weak, tuple(_assigned_keys(site.scope, site.statement, site.node))), weak


def _unmatched(original: Flow, converted: Flow):
    """The moves of the original with no counterpart in the converted code: matched by what they move and where
    they are assigned, then by what they move alone."""
    strong, weak = Counter(), Counter()
    for site in _moves(converted):
        marks = _marks(site)
        strong[marks[0]] += 1
        weak[marks[1]] += 1
    pending = []
    for site in _moves(original):
        marks = _marks(site)
        if strong[marks[0]] > 0:
            strong[marks[0]] -= 1
            weak[marks[1]] -= 1
        else:
            pending.append((site, marks))
    for site, marks in pending:
        if weak[marks[1]] > 0:
            weak[marks[1]] -= 1
        else:
            yield site


def removed_moves(original: Flow, converted: Flow):
    from accel_convert.check import Violation

    lookup = None
    found = []
    for site in _unmatched(original, converted):
        if lookup is None:
            lookup, original_loops = _Converted(converted), loops_by_iterable(original)
        scope, call = site.scope, site.node
        root = _root(original, scope, call.func.value)
        keys = ([root[0]] if root else []) + _assigned_keys(scope, site.statement, call)
        if isinstance(site.statement, ast.Return) and site.statement.value is not None and _on_spine(site.statement.value, call):
            keys.append(RETURNED)  # ``return Net().to(device)``: prepared where the function's result is
        if any(lookup.prepared(scope.qualname, key) for key in keys):
            continue
        sources = original.batch_sources(scope, root[1]) if root else frozenset()
        line = None
        loader = None
        ok = False
        for iterable, where in sorted(sources, key=lambda s: original.loader_status(s[1], s[0]) is None):
            prepared, at, named = lookup.loop_prepared(where.qualname, iterable, _order(original_loops, where, iterable))
            if prepared:
                ok = True
                break
            if loader is None:  # a known loader first, then what the batch is computed from
                loader, line, first = named or (_iterable_key(iterable), where.qualname), at, iterable
        if ok:
            continue
        moved = ast.unparse(call)
        if loader is not None:
            binding, qualname = loader
            what = f"a batch of `{binding or ast.unparse(first)}`, a loader that is not prepared"
        else:
            binding, qualname = (keys[0] if keys else None), scope.qualname
            what = f"`{binding}`, which is not prepared" if binding else "a value that is not prepared"
        found.append(
            Violation(
                "move-of-unprepared",
                binding,
                line or lookup.line_of(qualname, binding),
                f"move-of-unprepared: `{moved}` (line {call.lineno} of the original) was removed, but it moves "
                f"{what}: it now stays on the CPU",
                qualname,
            )
        )
    return found
