"""Applies a Plan to a module: rebuilds only the nodes on the way to an edit, and shares the rest.

A libcst transformer would rebuild every node it enters; here untouched subtrees are returned as they are, so
the cost follows the number of edits, not the size of the file.
"""

from __future__ import annotations

import libcst as cst

from accel_convert.analysis.traverse import Walker, code_fields
from accel_convert.edits.plan import Plan, expression

# nodes between a compound statement and its blocks, which are not statements themselves
_WRAPPERS = (cst.Else, cst.ExceptHandler, cst.ExceptStarHandler, cst.Finally, cst.MatchCase)
_STATEMENT_BLOCKS = {"body", "orelse", "handlers", "finalbody", "cases"}


def hot_nodes(facts, plan: Plan) -> set[int]:
    """Every node the rewrite must rebuild: edited nodes, the statements and blocks around them, and the
    expressions between an edited expression and its statement."""
    hot: set[int] = set()
    for key in (*plan.statements, *plan.edited_statements):
        for block, index in facts.statement_locations.get(key, ()):
            hot.add(block)
            if index >= 0:
                hot.add(id(facts.statement_at(block, index)))
    targets = set(plan.expressions)
    for key in plan.edited_statements:
        location = facts.statement_locations.get(key)
        if location:
            block, index = location[-1]
            _Ancestors(targets, hot).walk_statement(facts.statement_at(block, index))
    return hot


class _Ancestors(Walker):
    def __init__(self, targets: set[int], hot: set[int]) -> None:
        self.targets = targets
        self.hot = hot
        self.stack: list[int] = []

    def walk_statement(self, statement: cst.CSTNode) -> None:
        if isinstance(statement, cst.SimpleStatementLine):
            self.walk(statement)
            return
        for name in code_fields(type(statement)):  # the header only: nested statements are located apart
            if name in _STATEMENT_BLOCKS:
                continue
            value = getattr(statement, name)
            for item in value if isinstance(value, (tuple, list)) else (value,):
                if isinstance(item, cst.CSTNode):
                    self.stack = [id(statement)]
                    self.walk(item)

    def walk(self, node: cst.CSTNode) -> None:
        self.stack.append(id(node))
        if id(node) in self.targets:
            self.hot.update(self.stack)
        super().walk(node)
        self.stack.pop()


def rewrite(module: cst.Module, plan: Plan) -> cst.Module:
    return _Rebuild(plan).rebuild(module)


def _empty(block) -> bool:
    return isinstance(block, cst.IndentedBlock) and not block.body


def _drop_emptied_if(node: cst.If) -> cst.If | None:
    """An ``if`` whose body our edits emptied goes away (its ``else`` too when that was emptied)."""
    orelse = node.orelse
    if isinstance(orelse, cst.If):
        orelse = _drop_emptied_if(orelse)
    elif isinstance(orelse, cst.Else) and _empty(orelse.body):
        orelse = None
    if _empty(node.body) and orelse is None:
        return None
    return node.with_changes(orelse=orelse) if orelse is not node.orelse else node


def _is_blank(lines) -> bool:
    return all(line.comment is None for line in lines)


class _Rebuild:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.hot = plan.hot

    def rebuild(self, node: cst.CSTNode) -> cst.CSTNode:
        if id(node) not in self.hot and not isinstance(node, _WRAPPERS):
            return node
        changes = {}
        for name in code_fields(type(node)):
            value = getattr(node, name)
            if isinstance(value, cst.CSTNode):
                new = self.rebuild(value)
                if new is not value:
                    changes[name] = new
            elif isinstance(value, (tuple, list)):
                items = [self.rebuild(item) if isinstance(item, cst.CSTNode) else item for item in value]
                if any(new is not old for new, old in zip(items, value)):
                    changes[name] = items
        updated = node.with_changes(**changes) if changes else node
        if isinstance(node, (cst.Module, cst.IndentedBlock)):
            updated = updated.with_changes(body=self._body(node.body, updated.body))
        for _, edit in sorted(self.plan.expressions.get(id(node), ()), key=lambda entry: entry[0]):
            updated = edit.apply(updated)
        return updated

    def _body(self, originals, updated) -> list:
        result = []
        pending = []  # leading lines of removed statements, handed to the next statement
        open_guard = None  # (guard, the ``if`` just written for it) while neighbours may join it
        for original, current in zip(originals, updated):
            edit = self.plan.statements.get(id(original))
            lines = list(current.leading_lines)
            if pending:
                lines = lines if _is_blank(pending) and len(lines) >= len(pending) else pending + lines
                pending = []
            kept = current
            if edit is not None and edit.remove:
                kept = None
            elif edit is not None and edit.replacement is not None:
                kept = edit.replacement
            if isinstance(kept, cst.If):
                kept = _drop_emptied_if(kept)
            before = list(edit.before) if edit else []
            after = list(edit.after) if edit else []
            if kept is not None:
                kept = kept.with_changes(leading_lines=[])
            guard = edit.guard if edit is not None and kept is not None else None
            if guard is not None:
                if open_guard is not None and open_guard[0] == guard and not before and not lines:
                    joined = open_guard[1].with_changes(body=open_guard[1].body.with_changes(body=[*open_guard[1].body.body, kept]))
                    result[-1] = joined
                    open_guard = (guard, joined) if not after else None
                    result.extend(after)
                    continue
                kept = cst.If(test=expression(guard), body=cst.IndentedBlock([kept]))
            statements = [*before, *([kept] if kept is not None else []), *after]
            if not statements:
                pending = lines
                continue
            statements[0] = statements[0].with_changes(leading_lines=lines)
            result.extend(statements)
            open_guard = (guard, result[-1]) if guard is not None and not after else None
        return result
