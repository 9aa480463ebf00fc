"""Applies a Plan to a module in one pass; the only place that rebuilds statement lists."""

from __future__ import annotations

import libcst as cst

from accel_convert.plan import Plan


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


class Rewriter(cst.CSTTransformer):
    def __init__(self, plan: Plan) -> None:
        super().__init__()
        self.plan = plan

    def on_visit(self, node) -> bool:
        if isinstance(node, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
            return id(node) in self.plan.hot  # untouched statements are kept as they are, unvisited
        return True

    def on_leave(self, original_node, updated_node):
        result = super().on_leave(original_node, updated_node)
        for edit in self.plan.expressions.get(id(original_node), ()):
            result = edit.apply(result)
        return result

    def leave_Module(self, original_node: cst.Module, updated_node: cst.Module) -> cst.Module:
        return updated_node.with_changes(body=self._body(original_node.body, updated_node.body))

    def leave_IndentedBlock(self, original_node, updated_node):
        return updated_node.with_changes(body=self._body(original_node.body, updated_node.body))

    def _body(self, originals, updated) -> list:
        result = []
        pending = []  # leading lines of removed statements, handed to the next statement
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
            statements = [*before, *([kept] if kept is not None else []), *after]
            if not statements:
                pending = lines
                continue
            statements[0] = statements[0].with_changes(leading_lines=lines)
            result.extend(statements)
        return result
