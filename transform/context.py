"""What every rule gets while planning: the analysis, the accelerator's access, options, and line numbers."""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from accel_convert.access import Access
from accel_convert.analysis import Analysis
from accel_convert.facts import Location, Scope
from accel_convert.model import Change, Diagnostic, Options


@dataclass(eq=False)
class Context:
    analysis: Analysis
    access: Access
    options: Options
    uses: list[tuple[Scope, Location]] = field(default_factory=list)  # where rules' edits name the accelerator
    _positions: dict | None = None

    @property
    def module(self) -> cst.Module:
        return self.analysis.facts.module

    def position(self, node: cst.CSTNode) -> tuple[int, int]:
        """1-based line and column of an original node (positions are computed once, on first use)."""
        if self._positions is None:
            self._positions = MetadataWrapper(self.module, unsafe_skip_copy=True).resolve(PositionProvider)
        start = self._positions[node].start
        return start.line, start.column + 1

    def code(self, node: cst.CSTNode) -> str:
        return self.module.code_for_node(node)

    def change(self, code: str, node: cst.CSTNode, message: str) -> Change:
        return Change(code, self.position(node)[0], message)

    def diagnostic(self, code: str, node: cst.CSTNode, message: str) -> Diagnostic:
        line, column = self.position(node)
        return Diagnostic(code, line, column, message)

    def use(self, scope: Scope, location: Location) -> None:
        self.uses.append((scope, location))

    def indentation(self, location: Location) -> str:
        """The indentation of a statement at ``location``."""
        facts = self.analysis.facts
        text = ""
        for block_id, _ in location[1:]:
            block = facts.blocks[block_id]
            text += block.indent if block.indent is not None else self.module.default_indent
        return text


def common_level(locations: list[Location]) -> tuple[int, int, list[int]]:
    """The deepest block holding all ``locations``: (depth, block id, index of each location in that block)."""
    depth = 0
    while True:
        blocks = {location[depth][0] for location in locations}
        if len(blocks) != 1:
            depth -= 1
            break
        indices = {location[depth][1] for location in locations}
        if len(indices) != 1 or any(len(location) == depth + 1 for location in locations):
            break
        depth += 1
    return depth, locations[0][depth][0], [location[depth][1] for location in locations]
