"""Batch sizes scaled by the number of GPUs, as ``nn.DataParallel`` scripts do.

``nn.DataParallel`` splits one batch over the GPUs of one process, so such scripts load ``batch_size * n_gpu``
samples at a time (``n_gpu = torch.cuda.device_count()``, an ``--ngpu`` option). Under a launcher every process
loads batches of that size itself: the global batch grows with the number of processes a second time.
"""

from __future__ import annotations

import re

import libcst as cst

from accel_convert.analysis import symbols
from accel_convert.analysis.imports import dotted_name
from accel_convert.analysis.roles import Analysis
from accel_convert.analysis.traverse import Walker

# names that hold a number of GPUs: n_gpu, ngpu, num_gpus, n_gpus, gpu_count, gpus
_GPU_COUNT_NAME = re.compile(r"^(?:n_?|num_?|number_of_)gpus?$|^gpu_?count$|^gpus$")


def gpu_scaled_batches(analysis: Analysis) -> list[tuple[cst.CSTNode, cst.BaseExpression, cst.BaseExpression]]:
    """Each ``batch_size * n_gpu`` (also ``n_gpu * bs``, ``batch_size *= n_gpu``, ``bs * max(1, n_gpu)``, a product
    given as a DataLoader's ``batch_size=`` or assigned to a batch size, ``batch_size = 16 * n_gpu``) with its
    batch-size and GPU-count operands, in source order."""
    counts = _count_names(analysis)
    found: list[tuple[cst.CSTNode, cst.BaseExpression, cst.BaseExpression]] = []

    class _Products(Walker):
        def __init__(self) -> None:
            self.in_batch_size = 0

        def visit_Arg(self, node: cst.Arg) -> None:
            if node.keyword is not None and node.keyword.value == "batch_size":
                self.in_batch_size += 1

        def leave_Arg(self, node: cst.Arg) -> None:
            if node.keyword is not None and node.keyword.value == "batch_size":
                self.in_batch_size -= 1

        def visit_BinaryOperation(self, node: cst.BinaryOperation) -> bool:
            if isinstance(node.operator, cst.Multiply):
                for size, count in ((node.left, node.right), (node.right, node.left)):
                    if _counts_gpus(analysis, count, counts) and (self.in_batch_size or _is_batch_size(size)):
                        found.append((node, size, count))
                        return False
            return True

        def visit_Assign(self, node: cst.Assign) -> bool:
            value = node.value
            if any(_is_batch_size(target.target) for target in node.targets) and isinstance(value, cst.BinaryOperation):
                if isinstance(value.operator, cst.Multiply):
                    for size, count in ((value.left, value.right), (value.right, value.left)):
                        if _counts_gpus(analysis, count, counts):
                            found.append((value, size, count))
                            return False
            return True

        def visit_AugAssign(self, node: cst.AugAssign) -> None:
            if isinstance(node.operator, cst.MultiplyAssign) and _counts_gpus(analysis, node.value, counts):
                if _is_batch_size(node.target):
                    found.append((node, node.target, node.value))

    _Products().walk(analysis.facts.module)
    return found


def _count_names(analysis: Analysis) -> set[str]:
    """Dotted names assigned a GPU count (``n_gpu = torch.cuda.device_count()``, ``args.n_gpu = ...``)."""
    names: set[str] = set()
    changed = True
    while changed:
        changed = False
        for assignment in analysis.facts.assignments:
            if len(assignment.targets) != 1:
                continue
            key = dotted_name(assignment.targets[0])
            if key is not None and key not in names and _counts_gpus(analysis, assignment.value, names):
                names.add(key)
                changed = True
    return names


def _counts_gpus(analysis: Analysis, node: cst.BaseExpression, names: set[str]) -> bool:
    """``torch.cuda.device_count()``, ``max(1, n_gpu)``, ``len(args.gpus)``, a name that holds or says it holds a
    number of GPUs."""
    if isinstance(node, cst.Call):
        if analysis.qualify(node.func) in symbols.DEVICE_COUNTS:
            return True
        if isinstance(node.func, cst.Name) and node.func.value in ("max", "int", "len"):
            return any(_counts_gpus(analysis, arg.value, names) for arg in node.args if arg.keyword is None)
        return False
    key = dotted_name(node)
    if key is None:
        return False
    return key in names or _GPU_COUNT_NAME.match(key.rsplit(".", 1)[-1].lower()) is not None


def _is_batch_size(node: cst.BaseExpression) -> bool:
    key = dotted_name(node)
    if key is None:
        return False
    last = key.rsplit(".", 1)[-1].lower()
    return "batch" in last or last in ("bs", "bsz")
