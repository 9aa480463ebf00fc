"""A light import table: local names to the qualified names they were imported as.

One pass over import statements (at any depth of statement nesting, never into expressions); far cheaper than
libcst's scope and qualified-name metadata, and enough to tell ``optim.Adam`` from a user's own ``Adam``.
"""

from __future__ import annotations

import libcst as cst

from accel_convert.analysis.symbols import STAR_EXPORTS


def dotted_name(node: cst.BaseExpression) -> str | None:
    """``a.b.c`` for a chain of attributes over a name, else None."""
    parts = []
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    if not isinstance(node, cst.Name):
        return None
    parts.append(node.value)
    return ".".join(reversed(parts))


class ImportTable:
    """Maps names bound by imports to qualified names; star imports resolve through ``STAR_EXPORTS``."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.star_modules: list[str] = []

    @classmethod
    def of(cls, module: cst.Module) -> ImportTable:
        table = cls()
        table._scan(module.body)
        return table

    def _scan(self, statements) -> None:
        for statement in statements:
            if isinstance(statement, cst.SimpleStatementLine):
                for small in statement.body:
                    if isinstance(small, cst.Import):
                        self._add_import(small)
                    elif isinstance(small, cst.ImportFrom):
                        self._add_import_from(small)
            elif isinstance(statement, cst.BaseCompoundStatement):
                for block in _blocks(statement):
                    if isinstance(block, cst.IndentedBlock):
                        self._scan(block.body)

    def _add_import(self, node: cst.Import) -> None:
        for alias in node.names:
            full = dotted_name(alias.name)
            if alias.asname is not None:
                self.names[alias.asname.name.value] = full
            else:
                root = full.split(".")[0]
                self.names[root] = root

    def _add_import_from(self, node: cst.ImportFrom) -> None:
        if node.relative or node.module is None:
            return
        module = dotted_name(node.module)
        if isinstance(node.names, cst.ImportStar):
            self.star_modules.append(module)
            return
        for alias in node.names:
            name = alias.name.value
            local = alias.asname.name.value if alias.asname is not None else name
            self.names[local] = f"{module}.{name}"

    def qualify(self, node: cst.BaseExpression) -> str | None:
        """The qualified name of a (dotted) name expression, or None when it is not imported."""
        dotted = dotted_name(node)
        if dotted is None:
            return None
        root, _, rest = dotted.partition(".")
        base = self.names.get(root)
        if base is None:
            base = next((f"{m}.{root}" for m in self.star_modules if root in STAR_EXPORTS.get(m, ())), None)
            if base is None:
                return None
        return f"{base}.{rest}" if rest else base


def _blocks(statement: cst.BaseCompoundStatement):
    if isinstance(statement, cst.Match):
        for case in statement.cases:
            yield case.body
        return
    yield statement.body
    orelse = getattr(statement, "orelse", None)
    while orelse is not None:
        yield orelse.body
        orelse = getattr(orelse, "orelse", None)
    for handler in getattr(statement, "handlers", ()):
        yield handler.body
    final = getattr(statement, "finalbody", None)
    if final is not None:
        yield final.body
