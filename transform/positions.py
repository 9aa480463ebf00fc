"""Line and column of chosen nodes, from one code-generation pass that counts lines only where asked.

libcst's PositionProvider tracks every token of every node; a conversion needs the positions of a few nodes
(the ones its changes and diagnostics name), so this counts newlines lazily, at those nodes only.
"""

from __future__ import annotations

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
