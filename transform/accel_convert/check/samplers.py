"""Invariant 4: no ``DistributedSampler`` under a prepared loader.

``accelerator.prepare`` shards a loader's batches across the processes; a ``DistributedSampler`` (or a batch sampler
built on one) left in it shards them a second time, so each process sees 1/N² of the data. The sampler is followed
wherever it is made: inline, assigned under ``if args.distributed:``, returned by a helper of the file.
"""

from __future__ import annotations

import ast

from accel_convert.check.flow import Flow, is_distributed_sampler_name, is_loader_name
from accel_convert.check.scopes import dotted, key_of

_SAMPLER_POSITIONS = {"sampler": 3, "batch_sampler": 4}  # torch.utils.data.DataLoader's signature


def _sampler_arguments(flow: Flow, scope, call: ast.Call, qualified: str | None):
    for keyword in call.keywords:
        if keyword.arg in _SAMPLER_POSITIONS:
            yield keyword.value
        elif keyword.arg is None:  # DataLoader(dataset, **loader_kwargs)
            yield from _dict_entries(flow, scope, keyword.value)
    if (qualified and qualified.split(".")[0] == "torch") or qualified == "DataLoader":
        for position in _SAMPLER_POSITIONS.values():
            if position < len(call.args) and not any(isinstance(a, ast.Starred) for a in call.args[:position]):
                yield call.args[position]


def _dict_entries(flow: Flow, scope, node):
    """The sampler values of a ``{"sampler": ...}`` or ``dict(sampler=...)`` that ``node`` holds, also through
    ``kwargs.update({...})`` in the same scope."""
    values = [node]
    key = key_of(node, scope)
    if key is not None:
        values = [d.value for d in flow.lookup(scope, key, node) if d.kind == "assign" and not d.path]
        for site in flow.p.calls_by_name.get("update", ()):
            func = site.node.func
            if site.scope is scope and isinstance(func, ast.Attribute) and key_of(func.value, scope) == key:
                values += site.node.args
                values += [k.value for k in site.node.keywords if k.arg in _SAMPLER_POSITIONS]
    for value in values:
        if isinstance(value, ast.Dict):
            for name, item in zip(value.keys, value.values):
                if isinstance(name, ast.Constant) and name.value in _SAMPLER_POSITIONS:
                    yield item
        elif isinstance(value, ast.Call) and dotted(value.func) == "dict":
            yield from (k.value for k in value.keywords if k.arg in _SAMPLER_POSITIONS)


def distributed(flow: Flow, scope, expr, depth=0) -> ast.Call | None:
    """The DistributedSampler(...) call ``expr`` may hold, directly or as the sampler of a batch sampler."""
    if depth > 4:
        return None
    for origin in flow.origins(scope, expr):
        if origin[0] != "call":
            continue
        call, where = origin[2], origin[3]
        if is_distributed_sampler_name(origin[1]):
            return call
        inner = [k.value for k in call.keywords if k.arg == "sampler"] or call.args[:1]
        for value in inner:
            found = distributed(flow, where, value, depth + 1)
            if found is not None:
                return found
    return None


def samplers_under_prepare(flow: Flow):
    from accel_convert.check import Violation

    found = []
    for site in flow.prepare_calls():
        for arg in site.node.args:
            for origin in flow.origins(site.scope, arg):
                if origin[0] != "call" or not is_loader_name(origin[1]):
                    continue
                loader, where = origin[2], origin[3]
                for value in _sampler_arguments(flow, where, loader, origin[1]):
                    sampler = distributed(flow, where, value)
                    if sampler is None:
                        continue
                    name = dotted(arg) or ast.unparse(arg)
                    found.append(
                        Violation(
                            "sampler-under-prepare",
                            dotted(arg),
                            loader.lineno,
                            f"sampler-under-prepare: `{name}` is passed to `accelerator.prepare` but its loader keeps "
                            f"the DistributedSampler made on line {sampler.lineno}: its batches are sharded twice",
                            site.scope.qualname,
                        )
                    )
                    break
    return found
