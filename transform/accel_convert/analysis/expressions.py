"""Reading expressions by their syntax alone: the variable an expression derives from, device strings, chains of
device moves."""

from __future__ import annotations

import libcst as cst

_DEVICE_NAMES = ("cpu", "cuda", "mps", "xpu")


def strip_moves(node: cst.BaseExpression, is_move) -> cst.BaseExpression:
    """``x.to(device).cuda()`` -> ``x`` for the calls ``is_move`` accepts."""
    while isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and is_move(node):
        node = node.func.value
    return node


def root_name(node: cst.BaseExpression) -> str | None:
    """The variable an expression is derived from: ``batch["x"].float()`` -> ``batch``."""
    while True:
        if isinstance(node, cst.Name):
            return node.value
        if isinstance(node, (cst.Attribute, cst.Subscript)):
            node = node.value
        elif isinstance(node, cst.Call):
            node = node.func
        else:
            return None


def is_string(node, predicate) -> bool:
    if not isinstance(node, cst.SimpleString):
        return False
    value = node.evaluated_value
    return isinstance(value, str) and predicate(value)


def is_device_literal(node) -> bool:
    return is_string(node, lambda v: v.split(":")[0] in _DEVICE_NAMES)


def is_cpu_literal(node) -> bool:
    return is_string(node, lambda v: v == "cpu")


def is_string_device(node: cst.BaseExpression) -> bool:
    """``"cuda"``, ``"cuda:0" if ... else "cpu"``: a device held as a string."""
    if isinstance(node, cst.IfExp):
        return is_string_device(node.body) and is_string_device(node.orelse)
    return is_device_literal(node)

