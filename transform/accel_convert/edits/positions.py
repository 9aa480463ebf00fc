"""Line and column of chosen nodes, from one code-generation pass that counts lines only where asked.

libcst's PositionProvider tracks every token of every node; a conversion needs the positions of a few nodes
(the ones its changes and diagnostics name), so this counts newlines lazily, at those nodes only.

This subclasses libcst's ``CodegenState``, which is not public API: pyproject caps libcst below the next minor
release, and tests/transform/test_positions.py fails loudly (naming this module) if the hooks used here change.
"""

from __future__ import annotations

import ast
from contextlib import contextmanager

import libcst as cst
from libcst._nodes.internal import CodegenState


class _PositionState(CodegenState):
    def __init__(self, module: cst.Module, wanted: set[int]) -> None:
        super().__init__(default_indent=module.default_indent, default_newline=module.default_newline)
        self.wanted = wanted
        self.found: dict[int, tuple[int, int]] = {}
        self._line = 1
        self._counted = 0  # tokens already counted into _line
        self._column_start = 0  # offset in tokens' text where the current line starts is found by scanning back

    def _position(self) -> tuple[int, int]:
        tokens = self.tokens
        for token in tokens[self._counted :]:
            self._line += token.count("\n")
        self._counted = len(tokens)
        column = 0
        for token in reversed(tokens):
            newline = token.rfind("\n")
            if newline >= 0:
                column += len(token) - newline - 1
                break
            column += len(token)
        return self._line, column + 1

    @contextmanager
    def record_syntactic_position(self, node, *, start_node=None, end_node=None):
        if id(node) in self.wanted and id(node) not in self.found:
            self.found[id(node)] = self._position()
        yield


def positions(module: cst.Module, nodes) -> dict[int, tuple[int, int]]:
    """``{id(node): (line, column)}``, 1-based, for ``nodes`` of ``module``."""
    wanted = {id(node) for node in nodes}
    if not wanted:
        return {}
    state = _PositionState(module, wanted)
    module._codegen(state)
    return state.found


def statement_lines(module: cst.Module, tree: ast.Module) -> dict[int, int]:
    """``{id(statement): first line}`` for libcst statements, read off Python's own (fast) ``ast`` of the same text."""
    lines: dict[int, int] = {}
    _pair(module.body, tree.body, lines)
    return lines


def _pair(statements, nodes: list, lines: dict[int, int]) -> None:
    index = 0
    for statement in statements:
        if index >= len(nodes):
            return
        node = nodes[index]
        lines[id(statement)] = node.lineno
        if isinstance(statement, cst.SimpleStatementLine):
            index += len(statement.body)
            continue
        index += 1
        for block, inner in _blocks(statement, node):
            if isinstance(block, cst.IndentedBlock):
                _pair(block.body, inner, lines)


def _blocks(statement, node):
    """(libcst block, ast statement list) pairs of a compound statement."""
    if isinstance(statement, cst.If):
        yield statement.body, node.body
        orelse = statement.orelse
        if isinstance(orelse, cst.If) and node.orelse:
            yield from _blocks(orelse, node.orelse[0])
        elif isinstance(orelse, cst.Else):
            yield orelse.body, node.orelse
        return
    if isinstance(statement, cst.Match):
        for case, ast_case in zip(statement.cases, node.cases):
            yield case.body, ast_case.body
        return
    yield statement.body, node.body
    for handler, ast_handler in zip(getattr(statement, "handlers", ()), getattr(node, "handlers", ())):
        yield handler.body, ast_handler.body
    orelse = getattr(statement, "orelse", None)
    if orelse is not None:
        yield orelse.body, node.orelse
    final = getattr(statement, "finalbody", None)
    if final is not None:
        yield final.body, node.finalbody


def positions_in_statements(module: cst.Module, text: str, wanted: list[tuple[cst.CSTNode, cst.CSTNode, str]]):
    """Positions of nodes, each given with its enclosing statement and that statement's indentation.

    Only the statements that hold a wanted node are generated (with their real indentation, so columns are
    exact); their first lines come from ``ast``. Falls back to a whole-module pass when ``ast`` cannot parse the
    text (syntax newer than the running Python).
    """
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return positions(module, [node for node, _, _ in wanted])
    lines = statement_lines(module, tree)
    by_statement: dict[int, list] = {}
    for node, statement, indent in wanted:
        by_statement.setdefault(id(statement), [statement, indent, []])[2].append(node)
    found: dict[int, tuple[int, int]] = {}
    for statement, indent, nodes in by_statement.values():
        state = _PositionState(module, {id(statement), *map(id, nodes)})
        if indent:
            state.indent_tokens = [indent]
        statement._codegen(state)
        start_line, _ = state.found[id(statement)]
        first = lines.get(id(statement))
        if first is None:
            return positions(module, [node for node, _, _ in wanted])
        for node in nodes:
            line, column = state.found.get(id(node), state.found[id(statement)])
            found[id(node)] = (first + line - start_line, column)
    return found
