"""Losses averaged over the samples of a batch (``criterion(out, y)`` with the default reduction)."""

from __future__ import annotations

import libcst as cst

from accel_convert.analysis.facts import Assignment, Scope, target_names
from accel_convert.analysis.imports import dotted_name
from accel_convert.analysis.roles import Analysis, connected

# Methods that leave a scalar loss's value as it is (``loss.sum().item()`` is ``loss``).
_SCALAR_KEEPING = frozenset({"item", "sum", "mean", "detach", "cpu", "float", "double"})

_FUNCTIONAL_LOSSES = frozenset(
    "cross_entropy nll_loss mse_loss l1_loss smooth_l1_loss huber_loss binary_cross_entropy"
    " binary_cross_entropy_with_logits kl_div poisson_nll_loss".split()
)


def batch_mean_loss(analysis: Analysis, scope: Scope, assignments: list[Assignment], node, depth: int = 0) -> bool:
    """A loss call without ``reduction=``, or a name assigned once from one (``assignments``: the loop's, or none)."""
    if isinstance(node, cst.Name) and depth == 0:
        bound = [a for a in assignments if any(n == node.value for t in a.targets for n in target_names(t))]
        return len(bound) == 1 and batch_mean_loss(analysis, scope, assignments, bound[0].value, 1)
    if not isinstance(node, cst.Call):
        return False
    if any(a.keyword is not None and a.keyword.value in ("reduction", "reduce", "size_average") for a in node.args):
        return False
    qualified = analysis.qualify(node.func) or ""
    if qualified.startswith("torch.nn.functional.") and qualified.rsplit(".", 1)[1] in _FUNCTIONAL_LOSSES:
        return True
    key = dotted_name(node.func)
    if key is None:
        return False
    binding = analysis.binding(scope, key)
    for binding_source in connected(analysis, binding, upstream=True):
        creation = analysis.creations.get(binding_source) or _assignment_of(analysis, binding_source)
        if creation is not None and isinstance(creation.value, cst.Call):
            made = analysis.qualify(creation.value.func) or ""
            if made.startswith("torch.nn.") and made.endswith("Loss"):
                return not any(a.keyword is not None and a.keyword.value == "reduction" for a in creation.value.args)
    return False


def _assignment_of(analysis: Analysis, binding) -> Assignment | None:
    holder, key = binding
    for assignment in analysis.facts.assignments:
        if assignment.scope is holder and len(assignment.targets) == 1 and dotted_name(assignment.targets[0]) == key:
            return assignment
    return None


def without_scalar_methods(node: cst.BaseExpression) -> cst.BaseExpression:
    """``loss.detach().item()`` -> ``loss``: what a chain of value-keeping methods on a scalar is called on."""
    while (
        isinstance(node, cst.Call)
        and not node.args
        and isinstance(node.func, cst.Attribute)
        and node.func.attr.value in _SCALAR_KEEPING
    ):
        node = node.func.value
    return node
