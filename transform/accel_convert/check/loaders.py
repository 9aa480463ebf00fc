"""Invariants 1 and 2: loops over loaders, and gathers over their batches.

``unprepared-loader``: a loop over a ``DataLoader`` that is not prepared, which calls a prepared model (or hands one
to a helper), must move its batches itself (``.to(accelerator.device)``); otherwise the batches stay on the CPU while
the model is on the device, and every process reads all of the data.

``gather-unprepared``: ``accelerator.gather_for_metrics`` / ``gather`` of batches of a loader that is not prepared
collects every process's copy of the same batches: counts and sums double on 2 processes.
"""

from __future__ import annotations

import ast

from accel_convert.check.flow import Flow
from accel_convert.check.scopes import key_of

GATHERS = ("gather_for_metrics", "gather")
_MOVERS = ("send_to_device", "to_device", "move_to_device", "move_to")


def _nodes(loop):
    for part in loop.body:
        yield from ast.walk(part)


def _has_prepared(flow: Flow, scope, node) -> bool:
    return key_of(node, scope) is not None and any(o[0] == "prepared" for o in flow.origins(scope, node))


def trains_prepared(flow: Flow, loop) -> bool:
    """The loop's body calls a prepared object, or passes one to a call (other than the loop's own iterable:
    ``len(iterable)`` in a generator that relays a loader's batches feeds no model)."""
    scope = loop.scope
    iterable = loop.iter
    while isinstance(iterable, ast.Call) and iterable.args:  # enumerate(loader), tqdm(loader)
        iterable = iterable.args[0]
    own = key_of(iterable, scope)
    for node in _nodes(loop):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and flow.is_accelerator(scope, func.value):
            continue
        if _has_prepared(flow, scope, func):
            return True
        arguments = (*node.args, *(k.value for k in node.keywords))
        if any(_has_prepared(flow, scope, arg) for arg in arguments if own is None or key_of(arg, scope) != own):
            return True
    return False


def moves_batches(loop) -> bool:
    """Some device move in the loop's body (lenient: any ``.to``/``.cuda`` call, or any read of a device)."""
    for node in _nodes(loop):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in ("to", "cuda") or name in _MOVERS:
                return True
        elif isinstance(node, ast.Attribute) and "device" in node.attr.lower():
            return True
        elif isinstance(node, ast.Name) and "device" in node.id.lower():
            return True
    return False


def _loader_binding(flow: Flow, status, scope):
    return flow.loader_name(scope, status[2], status[1])


def unprepared_loaders(flow: Flow):
    from accel_convert.check import Violation

    found = []
    for loop in flow.p.loops:
        status = flow.loader_status(loop.scope, loop.iter)
        if status is None or status[0] != "unprepared":
            continue
        if not trains_prepared(flow, loop) or moves_batches(loop) or flow.conditionally_prepared(loop.scope, status[2]):
            continue
        binding, scope = _loader_binding(flow, status, loop.scope)
        name = binding or ast.unparse(loop.iter)
        found.append(
            Violation(
                "unprepared-loader",
                binding,
                loop.node.lineno if hasattr(loop.node, "lineno") else loop.iter.lineno,
                f"unprepared-loader: the loop over `{name}` feeds a prepared model, but `{name}` is not passed to "
                "`accelerator.prepare` and its batches are not moved to `accelerator.device`",
                scope if scope is not None else loop.scope.qualname,
            )
        )
    return found


def gathers_over_unprepared(flow: Flow):
    from accel_convert.check import Violation

    found = []
    for name in GATHERS:
        for site in flow.p.calls_by_name.get(name, ()):
            func = site.node.func
            if not isinstance(func, ast.Attribute) or not flow.is_accelerator(site.scope, func.value):
                continue
            sources = set()
            for arg in (*site.node.args, *(k.value for k in site.node.keywords)):
                sources |= flow.batch_sources(site.scope, arg)
            sources |= {(loop.iter, loop.scope) for loop in site.loops}
            for iterable, scope in sorted(sources, key=lambda s: s[0].lineno):
                status = flow.loader_status(scope, iterable)
                if status is None or status[0] != "unprepared" or flow.conditionally_prepared(scope, status[2]):
                    continue
                binding, binding_scope = _loader_binding(flow, status, scope)
                label = binding or ast.unparse(iterable)
                found.append(
                    Violation(
                        "gather-unprepared",
                        binding,
                        site.node.lineno,
                        f"gather-unprepared: `accelerator.{name}` collects batches of `{label}`, which is not "
                        "passed to `accelerator.prepare`: every process holds all of its batches, so the gathered "
                        "counts are multiplied by the number of processes",
                        binding_scope if binding_scope is not None else scope.qualname,
                    )
                )
                break
    return found
