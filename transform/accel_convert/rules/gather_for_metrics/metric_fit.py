"""Fitting the gather to what an evaluation loop does after its forward pass.

When only metric statements and their feeders read the gathered values, the gather rebinds the same names. When
other code after the forward pass reads them too (a comparison image, a ``view(batch_size, ...)``), the gather binds
new names (``all_out``) that only the metric computation reads, so that code keeps this process's batch. A loop
whose metrics cannot be computed from gathered values is left as it is, with the reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst

from accel_convert.analysis.facts import Assignment, Loop, Scope, target_names
from accel_convert.analysis.traverse import Walker
from accel_convert.rules.gather_for_metrics.batch_means import batch_mean_loss, without_scalar_methods
from accel_convert.rules.gather_for_metrics.metric_flow import MetricFlow, Unit, names_read

if TYPE_CHECKING:
    from accel_convert.analysis.roles import Analysis
    from accel_convert.rules.gather_for_metrics.evaluation import EvaluationLoop

# Calls whose argument is padded to the longest sequence of the batch it came from.
_PADDED_TO_BATCH = frozenset({"torch.nn.utils.rnn.pack_padded_sequence", "torch.nn.utils.rnn.pad_packed_sequence"})


def fit_to_metrics(
    analysis: Analysis,
    loop: Loop,
    found: EvaluationLoop,
    flow: MetricFlow,
    outputs: list[str],
    assignments: list[Assignment],
) -> EvaluationLoop:
    """Choose how ``found`` gathers (in place, or into new names for the metrics only), or why it cannot."""
    tracked = set(found.gathered)
    metric_reads, local_reads = flow.metric_reads(), flow.local_reads()
    problem = _unfit(analysis, loop, flow, set(outputs) & tracked, tracked, assignments)
    if problem is not None:
        return found.set_problem(*problem)
    shared = sorted(local_reads & flow.feeder_binds())
    if shared:
        unit = flow.first_local_reading({shared[0]})
        return found.set_problem(
            f"`{shared[0]}` feeds the metrics and is also used by other code after the forward pass, which would see "
            "every process's batch; compute the metrics from names of their own",
            unit.node,
        )
    if not local_reads & tracked:
        return found
    rebound = sorted(flow.feeder_binds() & tracked)
    if rebound:
        return found.set_problem(
            f"`{rebound[0]}` is reassigned after the forward pass and also used by code that needs this process's batch",
            found.statement,
        )
    if not flow.accumulates:
        unit = flow.first_local_reading(tracked)
        return found.set_problem(
            "nothing after the forward pass adds up a metric (`total += ...`, `.append(...)`, `.update(...)`) and "
            "this code uses this process's batch; gather what your metric needs with gather_for_metrics",
            unit.node,
        )
    gathered = [name for name in found.gathered if name in metric_reads]
    renamed = [u for u in flow.metric if u.read_names() & set(gathered)]
    one_line = [u for u in renamed if u.kind != "header" and not isinstance(u.statement, cst.SimpleStatementLine)]
    if one_line:
        return found.set_problem(
            "the metrics are computed on the line of a compound statement (`if ...: total += ...`) while other code "
            "needs this process's batch; put that metric statement on a line of its own",
            one_line[0].node,
        )
    found.gathered = gathered
    found.gathered_as = [free_name(loop.scope, f"all_{name}") for name in gathered]
    renames = dict(zip(found.gathered, found.gathered_as))
    found.renamed = [(name, unit.statement) for unit in flow.metric for name in unit.reads if name.value in renames]
    if found.inline_as in renames:
        found.inline_as = renames[found.inline_as]
    return found


def free_name(scope: Scope, name: str) -> str:
    """``name``, or ``name_`` (and so on) when the scope already binds it."""
    while name in scope.assigned or name in scope.params:
        name += "_"
    return name


def _unfit(analysis, loop, flow, model_outputs, tracked, assignments) -> tuple[str, cst.CSTNode] | None:
    """Why the metric computation cannot run on gathered values, and where; None when it can."""
    for unit in flow.metric:
        for node in _calls_and_subscripts(unit):
            if isinstance(node, cst.Call) and analysis.qualify(node.func) in _PADDED_TO_BATCH:
                padded = [n.value for n in names_read(*node.args) if n.value in tracked]
                if padded:
                    function = analysis.qualify(node.func).rsplit(".", 1)[1]
                    message = (
                        f"`{padded[0]}` goes through {function}() with this process's lengths: padded to the longest "
                        "sequence of each process's batch, its shape differs between processes; pad it with "
                        "accelerator.pad_across_processes before gathering, or gather per-sample results"
                    )
                    return message, node
            if isinstance(node, cst.Subscript):
                indices = [e.slice.value for e in node.slice if isinstance(e.slice, cst.Index)]
                for index in indices:
                    if isinstance(index, cst.Name) and index.value in model_outputs:
                        indexed = analysis.code(node.value)
                        message = (
                            f"`{index.value}`, an output of the model, indexes `{indexed}`: positions within one "
                            "process's batch do not address the batch gathered from every process; gather "
                            f"`{analysis.code(node)}` instead of `{indexed}` and `{index.value}`"
                        )
                        return message, node
        if isinstance(unit.node, cst.AugAssign) and not _sums_batch_means(analysis, loop, assignments, unit.node.value):
            source = _batch_mean_source(analysis, loop, assignments, unit.node.value, set())
            if source is not None:
                message = (
                    f"`{analysis.code(unit.node.target)}` adds up a value computed from `{analysis.code(source)}`, a "
                    "loss averaged over each batch: it depends on which samples share a batch, so it changes with "
                    "the number of processes; compute it from a loss with reduction=\"sum\" (or per sample)"
                )
                return message, unit.node
    return None


def _calls_and_subscripts(unit: Unit) -> list[cst.CSTNode]:
    found: list[cst.CSTNode] = []

    class _Collect(Walker):
        def visit_Call(self, node: cst.Call) -> None:
            found.append(node)

        def visit_Subscript(self, node: cst.Subscript) -> None:
            found.append(node)

    for expression in unit.expressions:
        _Collect().walk(expression)
    return found


def _sums_batch_means(analysis, loop, assignments, value) -> bool:
    """``loss.item()``, ``loss.item() * y.size(0)``, ``loss / n``: a batch-mean loss itself, weighted or scaled
    (the first is reported as a mean of batch means; the others are sums that the gather keeps right)."""
    operands = [value]
    if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, (cst.Multiply, cst.Divide)):
        operands = [value.left, value.right]
    return any(batch_mean_loss(analysis, loop.scope, assignments, without_scalar_methods(node)) for node in operands)


def _batch_mean_source(analysis, loop, assignments, node, seen: set[str]) -> cst.CSTNode | None:
    """The batch-mean loss ``node`` is computed from, following names that the loop assigns once."""
    candidates: list[cst.CSTNode] = []

    class _Collect(Walker):
        def visit_Call(self, call: cst.Call) -> None:
            candidates.append(call)

        def visit_Name(self, name: cst.Name) -> None:
            candidates.append(name)

        def visit_Attribute(self, attribute: cst.Attribute) -> bool:
            self.walk(attribute.value)
            return False

    _Collect().walk(node)
    for candidate in candidates:
        if batch_mean_loss(analysis, loop.scope, assignments, candidate):
            return candidate
        if isinstance(candidate, cst.Name) and candidate.value not in seen:
            seen.add(candidate.value)
            bound = [a for a in assignments if candidate.value in {n for t in a.targets for n in target_names(t)}]
            if len(bound) == 1:
                source = _batch_mean_source(analysis, loop, assignments, bound[0].value, seen)
                if source is not None:
                    return source
    return None
