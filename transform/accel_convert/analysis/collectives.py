"""Code that synchronises values across processes itself: ``torch.distributed`` collectives, called directly or
through a function or method of the file (a metric logger's ``synchronize_between_processes()``)."""

from __future__ import annotations

import libcst as cst

from accel_convert.analysis import symbols
from accel_convert.analysis.facts import CallSite, Loop, Scope
from accel_convert.analysis.roles import Analysis


def synchronising_scopes(analysis: Analysis) -> set[Scope]:
    """The functions and methods of the file that call a collective themselves."""
    return {
        site.scope
        for site in analysis.facts.calls
        if site.scope.parent is not None and analysis.qualify(site.node.func) in symbols.COLLECTIVES
    }


def synchronises_after(analysis: Analysis, loop: Loop, helpers: set[str]) -> bool:
    """The scope of ``loop`` calls a collective inside the loop or after it, directly or through a function or
    method of the file that calls one (``helpers``: their names, from ``synchronising_scopes``; found by name:
    ``logger.synchronize_between_processes()``)."""
    start = _path(loop.location)
    for site in analysis.facts.calls:
        if site.scope is not loop.scope or _path(site.location) < start:
            continue
        if analysis.qualify(site.node.func) in symbols.COLLECTIVES or _callee_name(site) in helpers:
            return True
    return False


def _callee_name(site: CallSite) -> str | None:
    func = site.node.func
    if isinstance(func, cst.Attribute):
        return func.attr.value
    return func.value if isinstance(func, cst.Name) else None


def _path(location) -> tuple[int, ...]:
    return tuple(index for _, index in location)
