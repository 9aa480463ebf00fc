"""A read-only walk over a libcst tree that skips whitespace and does not rebuild nodes.

libcst's own ``visit`` reconstructs every node, even for a visitor that changes nothing; that costs about as much
as parsing. The analysis only reads, so it walks the dataclass fields that hold code, with the same
``visit_<Node>`` / ``leave_<Node>`` method names as a libcst visitor (a ``visit_`` returning False skips children).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import libcst as cst

_SKIPPED = {
    "whitespace",
    "leading_lines",
    "lines_after_decorators",
    "header",
    "footer",
    "lpar",
    "rpar",
    "comma",
    "semicolon",
    "colon",
    "dot",
    "equal",
    "operator",
    "trailing_whitespace",
    "asynchronous",
    "lbracket",
    "rbracket",
    "lbrace",
    "rbrace",
    "star",
    "indent",
    "default_indent",
    "default_newline",
    "encoding",
    "has_trailing_newline",
    "first_line",
    "empty_lines",
    "keyword",
    "newline",
    "comment",
    "last_line",
}
_FIELDS: dict[type, tuple[str, ...]] = {}


def code_fields(kind: type) -> tuple[str, ...]:
    fields = _FIELDS.get(kind)
    if fields is None:
        fields = tuple(
            f.name
            for f in dataclasses.fields(kind)
            if f.name not in _SKIPPED and not f.name.startswith("whitespace") and not f.name.endswith("_whitespace")
        )
        _FIELDS[kind] = fields
    return fields


class Walker:
    """Subclass and define ``visit_<Node>`` / ``leave_<Node>``; call ``walk(node)``."""

    _handlers: ClassVar[dict[type, tuple]] = {}

    def __init_subclass__(cls) -> None:
        cls._handlers = {}

    def _handlers_for(self, kind: type) -> tuple:
        handlers = self._handlers.get(kind)
        if handlers is None:
            name = kind.__name__
            handlers = (getattr(type(self), f"visit_{name}", None), getattr(type(self), f"leave_{name}", None))
            self._handlers[kind] = handlers
        return handlers

    def walk(self, node: cst.CSTNode) -> None:
        visit, leave = self._handlers_for(type(node))
        if visit is None or visit(self, node) is not False:
            for name in code_fields(type(node)):
                value = getattr(node, name)
                if isinstance(value, cst.CSTNode):
                    self.walk(value)
                elif isinstance(value, (tuple, list)):
                    for item in value:
                        if isinstance(item, cst.CSTNode):
                            self.walk(item)
        if leave is not None:
            leave(self, node)


def free_names(node) -> set[str]:
    """The plain names an expression reads (``args.amp`` reads ``args``); empty for None."""
    names: set[str] = set()
    if node is None:
        return names

    class _Names(Walker):
        def visit_Name(self, name: cst.Name) -> None:
            names.add(name.value)

        def visit_Attribute(self, attribute: cst.Attribute) -> bool:
            self.walk(attribute.value)
            return False

    _Names().walk(node)
    return names
