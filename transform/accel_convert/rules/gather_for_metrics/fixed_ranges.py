"""Loops over a fixed number of samples in the metric code of a gathered evaluation loop.

The classifier tutorials count per-class hits with ``for i in range(batch_size): label = labels[i];
class_correct[label] += c[i]``. After ``gather_for_metrics`` a batch holds the samples of every process (and the last
one fewer), so a bound fixed to the loader's batch size counts one process's share, or indexes past the end. Such a
bound is replaced by the length of the gathered batch value the loop indexes (``range(len(labels))``), which is the
batch size itself with one process. A bound that is not the batch size (``range(num_classes)``) is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import libcst as cst

from accel_convert.analysis.imports import dotted_name
from accel_convert.analysis.roles import connected
from accel_convert.analysis.traverse import Walker
from accel_convert.rules.gather_for_metrics.metric_flow import MetricFlow, names_read

if TYPE_CHECKING:
    from accel_convert.analysis.facts import Loop
    from accel_convert.analysis.roles import Analysis

_DATALOADER_BATCH_SIZE = 1  # DataLoader(dataset, batch_size, ...): batch_size's position


@dataclass(frozen=True)
class FixedRange:
    """``range(batch_size)`` in a metric ``for`` header: ``bound`` is replaced by ``len(<indexed>)``."""

    bound: cst.BaseExpression  # the node to replace (the ``stop`` argument of ``range``)
    replacement: str  # ``len(labels)``
    statement: cst.For  # the ``for`` statement holding it


def fixed_ranges(
    analysis: Analysis, loop: Loop, loader_binding, flow: MetricFlow, gathered: dict[str, str]
) -> tuple[list[FixedRange], tuple[str, cst.CSTNode] | None]:
    """The metric ``for i in range(<batch size>)`` loops that index values of the gathered batch with ``i``, with
    what replaces their bound; or why one cannot be rewritten, and where.

    ``gathered``: each gathered name -> the name the gather binds it to (itself, or ``all_<name>``)."""
    sizes = _batch_size_codes(analysis, loader_binding)
    per_sample = _per_sample_names(flow, set(gathered))
    found: list[FixedRange] = []
    for unit in flow.metric:
        header = unit.node
        if unit.kind != "header" or not isinstance(header, cst.For) or not isinstance(header.target, cst.Name):
            continue
        bound, rewritable = _range_bound(header.iter)
        if bound is None or not _is_batch_size(analysis, bound, sizes):
            continue
        indexed = _indexed_by(header.body, header.target.value, per_sample)
        if not indexed:
            continue
        if not rewritable:
            message = (
                f"`for {header.target.value} in {analysis.code(header.iter)}` walks a fixed number of samples of "
                "each batch, but a gathered batch holds the samples of every process (the last one fewer); iterate "
                f"`range(len({indexed[0]}))` instead"
            )
            return [], (message, header.iter)
        chosen = next((name for name in gathered if name in indexed), indexed[0])
        found.append(FixedRange(bound, f"len({gathered.get(chosen, chosen)})", header))
    return found, None


def _range_bound(node: cst.BaseExpression) -> tuple[cst.BaseExpression | None, bool]:
    """``range(n)`` / ``range(0, n)`` -> (n, True); ``range(a, n)``, ``range(0, n, k)`` -> (n, False); else None."""
    if not (isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.func.value == "range"):
        return None, False
    args = node.args
    if not args or any(arg.keyword is not None or arg.star for arg in args) or len(args) > 3:
        return None, False
    if len(args) == 1:
        return args[0].value, True
    start = args[0].value
    plain_start = isinstance(start, cst.Integer) and start.evaluated_value == 0
    return args[1].value, plain_start and len(args) == 2


def _batch_size_codes(analysis: Analysis, binding) -> set[str]:
    """The code of the ``batch_size`` given to the DataLoader the loop iterates (``8``, ``args.batch_size``)."""
    codes: set[str] = set()
    if binding is None:
        return codes
    for source in connected(analysis, binding, upstream=True):
        creation = analysis.creations.get(source)
        call = creation.value if creation is not None else None
        if not isinstance(call, cst.Call):
            continue
        for position, arg in enumerate(call.args):
            if (arg.keyword is not None and arg.keyword.value == "batch_size") or (
                arg.keyword is None and not arg.star and position == _DATALOADER_BATCH_SIZE
            ):
                codes.add(analysis.code(arg.value).strip())
    return codes


def _is_batch_size(analysis: Analysis, node: cst.BaseExpression, sizes: set[str]) -> bool:
    """The loader's batch size, ``<loader>.batch_size``, or a name that says it is one (``batch_size``, ``bs``)."""
    if analysis.code(node).strip() in sizes:
        return True
    key = dotted_name(node)
    if key is None:
        return False
    last = key.rsplit(".", 1)[-1].lower()
    return "batch" in last or last in ("bs", "bsz")


def _per_sample_names(flow: MetricFlow, gathered: set[str]) -> set[str]:
    """The gathered names and the names the metric code computes from them (``c = (pred == labels).squeeze()``)."""
    names = set(gathered)
    for unit in flow.metric:
        if unit.kind == "assign" and unit.read_names() & names:
            names |= unit.binds
    return names


def _indexed_by(body: cst.BaseSuite, index: str, per_sample: set[str]) -> list[str]:
    """The per-sample names that ``body`` indexes with ``index`` (``labels[i]``, ``c[i].item()``), in order."""
    found: list[str] = []

    class _Subscripts(Walker):
        def visit_Subscript(self, node: cst.Subscript) -> None:
            if isinstance(node.value, cst.Name) and node.value.value in per_sample:
                if any(read.value == index for element in node.slice for read in names_read(element)):
                    if node.value.value not in found:
                        found.append(node.value.value)

    _Subscripts().walk(body)
    return found
