"""Where a function uses one of its parameters as a GPU index on this machine.

``torch.multiprocessing.spawn(fn, nprocs=n)`` calls ``fn(i, ...)`` with ``i`` in ``range(n)``: the process's index on
its machine. Scripts pin that GPU (``torch.cuda.set_device(gpu)``, ``.cuda(gpu)``, ``torch.device("cuda", gpu)``,
``f"cuda:{gpu}"``, ``device_ids=[gpu]``), which only the local rank can stand for (the global rank of a process on a
second machine is no GPU of its own).
"""

from __future__ import annotations

import libcst as cst

from accel_convert.analysis.facts import Scope
from accel_convert.analysis.imports import dotted_name
from accel_convert.analysis.traverse import Walker

_DEVICE_CALLS = frozenset({"torch.cuda.set_device", "torch.cuda.device", "torch.device"})
_DEVICE_METHODS = frozenset({"cuda", "to"})
_DEVICE_KEYWORDS = frozenset({"device_ids", "output_device", "device", "map_location"})


def gpu_index_use(analysis, function: Scope, parameter: str) -> cst.CSTNode | None:
    """The first node of ``function`` (nested functions included) that uses ``parameter`` (or a name or attribute
    assigned from it, ``args.gpu = gpu``) as a GPU index; None when it has none."""
    keys = _aliases(analysis, function, parameter)
    for site in analysis.facts.calls:
        if not site.scope.sees(function):
            continue
        call = site.node
        qualified = analysis.qualify(call.func)
        method = call.func.attr.value if isinstance(call.func, cst.Attribute) else None
        for index, arg in enumerate(call.args):
            by_keyword = arg.keyword is not None and arg.keyword.value in _DEVICE_KEYWORDS
            positional = arg.keyword is None and (qualified in _DEVICE_CALLS or (method in _DEVICE_METHODS and index == 0))
            if (by_keyword or positional) and _mentions(arg.value, keys):
                return call
    for node in _formatted_devices(analysis, function):
        if _mentions(node, keys):
            return node
    return None


def _aliases(analysis, function: Scope, parameter: str) -> set[str]:
    """``parameter`` and what the function assigns it to, as a whole (``args.gpu = gpu``, ``local = gpu``)."""
    keys = {parameter}
    for assignment in analysis.facts.assignments:
        if assignment.scope is function and dotted_name(assignment.value) in keys:
            keys.update(key for key in map(dotted_name, assignment.targets) if key is not None)
    return keys


def _mentions(node: cst.CSTNode, keys: set[str]) -> bool:
    found = []

    class _Find(Walker):
        def visit_Attribute(self, attribute: cst.Attribute) -> bool:
            if dotted_name(attribute) in keys:
                found.append(attribute)
                return False
            return True

        def visit_Name(self, name: cst.Name) -> None:
            if name.value in keys:
                found.append(name)

    _Find().walk(node)
    return bool(found)


def _formatted_devices(analysis, function: Scope) -> list[cst.CSTNode]:
    """``f"cuda:{...}"`` strings in the function's statements."""
    found = []

    class _Strings(Walker):
        def visit_FormattedString(self, node: cst.FormattedString) -> None:
            text = "".join(part.value for part in node.parts if isinstance(part, cst.FormattedStringText))
            if "cuda:" in text:
                found.append(node)

    _Strings().walk(function.node.body)
    return found
