"""Function parameters whose default is a device: ``def evaluate(model, loader, device="cuda:0")``.

A default is evaluated once, when the ``def`` runs, before any accelerator exists: a call that leaves it out uses
that device in every process (GPU 0, or the CPU under ``--cpu``) whatever the process's own device is. Such a
parameter holds a device, and the calls that leave it out are what must pass the accelerator's device instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from accel_convert.analysis.everywhere import callers_of
from accel_convert.analysis.facts import CallSite, Scope


@dataclass(frozen=True)
class DeviceDefault:
    function: Scope
    name: str
    default: cst.BaseExpression
    position: int | None  # its index among the positional parameters; None for a keyword-only one
    string: bool  # the default is a string ("cuda:0"), and the function may use it as one


def device_defaults(analysis) -> list[DeviceDefault]:
    found = []
    for scope in analysis.facts.scopes:
        node = scope.node
        if not isinstance(node, cst.FunctionDef):
            continue
        params = node.params
        positional = [*params.posonly_params, *params.params]
        for index, param in enumerate([*positional, *params.kwonly_params]):
            default = param.default
            if default is None or not _accelerator_device(analysis, default):
                continue
            position = index if index < len(positional) else None
            found.append(DeviceDefault(scope, param.name.value, default, position, _is_string(default)))
    return found


def calls_leaving_out(analysis, default: DeviceDefault) -> tuple[list[CallSite], list[CallSite]]:
    """(the calls of the function that leave the parameter out, those that may pass it through ``*args`` or
    ``**kwargs``); the calls that pass it are neither."""
    missing, unknown = [], []
    for site in callers_of(analysis, default.function):
        call = site.node
        if any(arg.keyword is not None and arg.keyword.value == default.name for arg in call.args):
            continue
        if any(arg.star for arg in call.args):
            unknown.append(site)
            continue
        positional = sum(1 for arg in call.args if arg.keyword is None)
        method = default.function.class_name is not None and isinstance(call.func, cst.Attribute)
        index = None if default.position is None else default.position - (1 if method else 0)
        if index is not None and positional > index:
            continue
        missing.append(site)
    return missing, unknown


def used_otherwise(analysis, function: Scope) -> bool:
    """The function's name is read other than as the callee of a call (passed as a callback, stored)."""
    if function.class_name is not None:
        return False  # methods: only ``self.method(...)`` calls are followed; others are calls of unknown objects
    name = function.name
    calls = sum(1 for site in analysis.facts.calls if isinstance(site.node.func, cst.Name) and site.node.func.value == name)
    # the ``def`` line's own name is recorded as a load at the def's location
    loads = sum(1 for load in analysis.facts.loads if load.name == name and load.location != function.location)
    return loads > calls


def _accelerator_device(analysis, node: cst.BaseExpression) -> bool:
    """A device expression that is not always the CPU (``"cuda:0"``, ``torch.device("cuda" if ... else "cpu")``)."""
    if not analysis.is_device_expression(node):
        return False
    if isinstance(node, cst.Call):
        node = node.args[0].value if node.args and node.args[0].keyword is None else node
    return not (isinstance(node, cst.SimpleString) and node.evaluated_value == "cpu")


def _is_string(node: cst.BaseExpression) -> bool:
    if isinstance(node, cst.IfExp):
        return _is_string(node.body) and _is_string(node.orelse)
    return isinstance(node, cst.SimpleString)
