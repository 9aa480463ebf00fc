"""Sums over one process's share of a loader divided by the size of the whole data set.

``train_loss += loss.item()`` in a training loop over ``train_loader``, then ``train_loss / len(train_loader.dataset)``:
once the loader is prepared each process sums only its share of the batches, while ``loader.dataset`` is still the
whole data set, so under N processes the printed average is 1/N of the one-process value.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from accel_convert.analysis.facts import Loop
from accel_convert.analysis.imports import dotted_name
from accel_convert.analysis.traverse import Walker


@dataclass(frozen=True)
class ShareDividedByWhole:
    total: str  # the accumulated name
    loader: str  # the loader whose share it sums
    division: cst.CSTNode  # ``total / len(loader.dataset)`` (or the ``/=`` statement's operation)


def shares_divided_by_whole(loop: Loop, loader: str) -> list[ShareDividedByWhole]:
    """In the function (or module) holding ``loop`` over ``loader``: each name ``+=``-accumulated inside the loop
    that the scope divides by ``len(loader.dataset)``."""
    totals = _accumulated(loop.node)
    if not totals:
        return []
    found: list[ShareDividedByWhole] = []

    class Divisions(Walker):
        def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
            if isinstance(node.operator, cst.Divide) and isinstance(node.left, cst.Name) and node.left.value in totals:
                if _whole_size(node.right, loader):
                    found.append(ShareDividedByWhole(node.left.value, loader, node))

        def visit_AugAssign(self, node: cst.AugAssign) -> None:
            if isinstance(node.operator, cst.DivideAssign) and isinstance(node.target, cst.Name):
                if node.target.value in totals and _whole_size(node.value, loader):
                    found.append(ShareDividedByWhole(node.target.value, loader, node))

    Divisions().walk(loop.scope.node)
    return found


def _accumulated(loop: cst.CSTNode) -> set[str]:
    names: set[str] = set()

    class Sums(Walker):
        def visit_AugAssign(self, node: cst.AugAssign) -> None:
            if isinstance(node.operator, cst.AddAssign) and isinstance(node.target, cst.Name):
                names.add(node.target.value)

    Sums().walk(loop.body)
    return names


def _whole_size(node: cst.BaseExpression, loader: str) -> bool:
    """``len(loader.dataset)`` (or ``len(loader.sampler)``, the same size before ``prepare``)."""
    if not (isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.func.value == "len" and node.args):
        return False
    value = node.args[0].value
    return isinstance(value, cst.Attribute) and value.attr.value in ("dataset", "sampler") and dotted_name(value.value) == loader
