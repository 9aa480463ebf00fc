"""Invariant 6: every object passed to ``prepare`` is bound on every path that reaches the ``prepare``.

``prepare`` runs on every process; an argument assigned only under ``if accelerator.is_main_process:`` (or any ``if``
without an ``else`` that binds it, a loop that may not run, a ``try`` whose handler does not) raises
``UnboundLocalError`` on the other processes. A definite-assignment walk over the statements of the ``prepare``'s
scope; a block that cannot fall through (``return``, ``raise``, ``sys.exit()``) binds everything, and a later ``if``
with the very same condition sees what the earlier one bound.
"""

from __future__ import annotations

import ast

from accel_convert.check.flow import Flow
from accel_convert.check.scopes import ends_block, key_of, target_paths


class _Walk:
    def __init__(self, scope, targets: dict):
        self.scope = scope
        self.targets = targets  # id(statement) -> [prepare calls in it]
        self.at: dict = {}  # id(call) -> the names bound there
        self.conditional: dict = {}  # ast.dump(test) -> names an earlier `if test:` binds

    def bind_target(self, bound: set, target):
        for node, _ in target_paths(target):
            key = key_of(node, self.scope)
            if key is not None:
                bound.add(key)

    def block(self, statements, bound):
        for statement in statements:
            if bound is None:
                return None
            bound = self.statement(statement, set(bound))
        return bound

    def statement(self, s, bound):  # noqa: C901
        for call in self.targets.get(id(s), ()):
            self.at[id(call)] = frozenset(bound)
        for node in ast.walk(s) if not hasattr(s, "body") else ():  # walrus targets of simple statements
            if isinstance(node, ast.NamedExpr):
                self.bind_target(bound, node.target)
        if isinstance(s, ast.Assign):
            for target in s.targets:
                self.bind_target(bound, target)
        elif isinstance(s, (ast.AnnAssign, ast.AugAssign)):
            if getattr(s, "value", None) is not None:
                self.bind_target(bound, s.target)
        elif isinstance(s, (ast.For, ast.AsyncFor, ast.While)):
            inner = set(bound)
            if not isinstance(s, ast.While):
                self.bind_target(inner, s.target)
            self.block(s.body, inner)
            after = self.block(s.orelse, set(bound))
            return bound if after is None else after
        elif isinstance(s, ast.If):
            test = ast.dump(s.test)
            body = self.block(s.body, bound | self.conditional.get(test, set()))
            orelse = self.block(s.orelse, set(bound))
            if not s.orelse and body is not None:
                self.conditional.setdefault(test, set()).update(body - bound)
            if body is None:
                return orelse
            if orelse is None:
                return body
            return body & orelse
        elif isinstance(s, (ast.With, ast.AsyncWith)):
            for item in s.items:
                if item.optional_vars is not None:
                    self.bind_target(bound, item.optional_vars)
            return self.block(s.body, bound)
        elif isinstance(s, (ast.Try, getattr(ast, "TryStar", ast.Try))):
            body = self.block(s.body, set(bound))
            outs = [self.block(s.orelse, body) if body is not None else None]
            for handler in s.handlers:
                start = set(bound)
                if handler.name:
                    start.add(handler.name)
                outs.append(self.block(handler.body, start))
            live = [out for out in outs if out is not None]
            merged = set.intersection(*live) if live else None
            if s.finalbody:
                final = self.block(s.finalbody, set(merged if merged is not None else bound))
                return None if merged is None or final is None else final
            return merged
        elif isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(s.name)
        elif isinstance(s, (ast.Import, ast.ImportFrom)):
            bound.update(alias.asname or alias.name.split(".")[0] for alias in s.names)
        elif isinstance(s, (ast.Global, ast.Nonlocal)):
            bound.update(s.names)
        elif isinstance(s, getattr(ast, "Match", ())):
            self.block_each([case.body for case in s.cases], bound)
        elif ends_block([s]):
            return None
        return bound

    def block_each(self, blocks, bound):
        for statements in blocks:
            self.block(statements, set(bound))


def _local(flow: Flow, scope, key: str) -> bool:
    """Assigned in ``scope`` (a local, or for ``self.x`` an attribute no other method sets)."""
    if key.startswith("self."):
        if key not in scope.defs or scope.cls is None:
            return False
        return not any(key in method.defs for method in scope.cls.methods.values() if method is not scope)
    return key in scope.defs and key not in scope.declared


def unbound_prepare_arguments(flow: Flow):
    from accel_convert.check import Violation

    by_scope: dict = {}
    for site in flow.prepare_calls():
        by_scope.setdefault(id(site.scope), (site.scope, []))[1].append(site)
    found = []
    for scope, sites in by_scope.values():
        targets: dict = {}
        for site in sites:
            targets.setdefault(id(site.statement), []).append(site.node)
        walk = _Walk(scope, targets)
        start = set(scope.params)
        body = scope.node.body
        walk.block(body, start)
        for site in sites:
            bound = walk.at.get(id(site.node))
            if bound is None:
                continue
            for arg in site.node.args:
                key = key_of(arg, scope)
                if key is None or key in bound or not _local(flow, scope, key):
                    continue
                found.append(
                    Violation(
                        "prepare-arg-unbound",
                        key,
                        site.node.lineno,
                        f"prepare-arg-unbound: `{key}` is passed to `accelerator.prepare` on line "
                        f"{site.node.lineno}, but some paths to it do not bind `{key}` (it is assigned only under a "
                        "condition): the processes where it is not bound stop with UnboundLocalError",
                        scope.qualname,
                    )
                )
    return found
