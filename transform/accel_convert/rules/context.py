"""What every rule gets while planning: the analysis, the decisions, options, and line numbers."""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from accel_convert.analysis.facts import Location, Scope
from accel_convert.analysis.roles import Analysis
from accel_convert.decisions import Decisions
from accel_convert.decisions.access import Access
from accel_convert.edits.plan import Pending
from accel_convert.edits.positions import positions, positions_in_statements
from accel_convert.model import NOTE, Change, Diagnostic, Options


@dataclass(eq=False)
class Context:
    analysis: Analysis
    decisions: Decisions
    options: Options
    uses: list[tuple[Scope, Location]] = field(default_factory=list)  # where rules' edits name the accelerator
    # arguments other rules give ``Accelerator(...)``: (code, names the code reads)
    accelerator_arguments: list[tuple[str, set[str]]] = field(default_factory=list)
    # names other rules' arguments need imported from the runtime next to ``Accelerator``
    accelerator_imports: list[str] = field(default_factory=list)
    _call_statements: dict[int, cst.CSTNode] | None = None

    @property
    def access(self) -> Access | None:
        """Where the accelerator lives and how each scope reaches it (None without a training run)."""
        return self.decisions.access

    @property
    def module(self) -> cst.Module:
        return self.analysis.facts.module

    def code(self, node: cst.CSTNode) -> str:
        return self.module.code_for_node(node)

    def change(self, code: str, node: cst.CSTNode, message: str, statement: cst.CSTNode | None = None) -> Pending:
        return Pending(Change, code, node, message, statement)

    def diagnostic(self, code: str, node: cst.CSTNode, message: str, statement: cst.CSTNode | None = None) -> Pending:
        return Pending(Diagnostic, code, node, message, statement)

    def note(self, code: str, node: cst.CSTNode, message: str, statement: cst.CSTNode | None = None) -> Pending:
        """A diagnostic that only explains a line kept on purpose (shown with ``-v``; no work for the user)."""
        return Pending(Diagnostic, code, node, message, statement, NOTE)

    def _statement_of(self, item: Pending) -> cst.CSTNode | None:
        if item.statement is not None:
            return item.statement
        facts = self.analysis.facts
        if id(item.node) in facts.statement_locations:
            return item.node
        if self._call_statements is None:
            self._call_statements = {id(site.node): site.statement for site in facts.calls}
        return self._call_statements.get(id(item.node))

    def resolve(self, pending: list[Pending], text: str) -> list:
        """Changes and diagnostics with the (1-based) line and column of the nodes they name in ``text``."""
        wanted, elsewhere = [], []
        for item in pending:
            statement = self._statement_of(item)
            location = self.analysis.facts.statement_locations.get(id(statement))
            if location is None:
                elsewhere.append(item.node)
            else:
                wanted.append((item.node, statement, self.indentation(location)))
        found = positions_in_statements(self.module, text, wanted)
        found.update(positions(self.module, elsewhere))
        result = []
        for item in pending:
            line, column = found.get(id(item.node), (0, 0))
            if item.kind is Change:
                result.append(Change(item.code, line, item.message))
            else:
                result.append(Diagnostic(item.code, line, column, item.message, item.severity))
        return result

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
