"""Devices a library chooses: ``device = select_device("auto")``, ``device = utils.get_device()``.

A function of another package that returns the device to train on runs before (or without) the accelerator and does
not know which process it is in: it gives every process the same device (the first GPU). The converter cannot tell
what such a call does, so it recognises it by use: the name it is assigned to is where things are moved
(``.to(device)``, ``.cuda(device)``, ``device=device``), and the call or the name says "device" (``.to()`` also
takes a dtype).
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from accel_convert.analysis.facts import Assignment
from accel_convert.analysis.imports import dotted_name

_OWN_PACKAGES = ("torch", "accel", "accelerate", "numpy", "os", "argparse", "builtins")


@dataclass(frozen=True)
class LibraryDevice:
    assignment: Assignment
    name: str
    call: cst.Call


def library_devices(analysis) -> list[LibraryDevice]:
    candidates = {}
    for assignment in analysis.facts.assignments:
        value = assignment.value
        if len(assignment.targets) != 1 or not isinstance(value, cst.Call):
            continue
        key = dotted_name(assignment.targets[0])
        qualified = analysis.qualify(value.func)
        if key is None or qualified is None or qualified.split(".")[0] in _OWN_PACKAGES:
            continue
        if "device" not in key.rsplit(".", 1)[-1].lower() and "device" not in qualified.rsplit(".", 1)[-1].lower():
            continue  # ``.to(x)`` also takes a dtype: only what is named a device counts
        candidates.setdefault(analysis.binding(assignment.scope, key), []).append((assignment, key, value))
    if not candidates:
        return []
    used = set()
    for site in analysis.facts.calls:
        call = site.node
        for arg in _device_arguments(call):
            key = dotted_name(arg)
            if key is not None:
                binding = analysis.binding(site.scope, key)
                if binding in candidates:
                    used.add(binding)
    return [LibraryDevice(*found[0]) for binding, found in candidates.items() if binding in used and len(found) == 1]


def _device_arguments(call: cst.Call) -> list[cst.BaseExpression]:
    """What a call is given as a device: ``x.to(d)`` / ``x.cuda(d)`` (first positional), ``device=d``."""
    found = [arg.value for arg in call.args if arg.keyword is not None and arg.keyword.value == "device"]
    func = call.func
    if isinstance(func, cst.Attribute) and func.attr.value in ("to", "cuda"):
        positional = [arg for arg in call.args if arg.keyword is None and not arg.star]
        if positional:
            found.append(positional[0].value)
    return found
