"""The analysis of one module, stage by stage: roles from constructors and data flow, batch loops, the training run's
anchor, devices and moves, backward calls."""

from __future__ import annotations

import libcst as cst

from accel_convert.analysis.devices import (
    drop_overwritten_devices,
    find_device_definitions,
    find_flags,
    find_moves,
    find_option_devices,
)
from accel_convert.analysis.facts import collect
from accel_convert.analysis.imports import ImportTable
from accel_convert.analysis.loops import find_batch_loops, find_batch_parameters, find_models_called_in_loops
from accel_convert.analysis.roles import (
    Analysis,
    find_anchor,
    find_backward_calls,
    find_direct_roles,
    find_edges,
    find_model_classes,
    propagate,
)
from accel_convert.analysis.used_optimizers import find_used_optimizers


def analyse(module: cst.Module, imports: ImportTable | None = None) -> Analysis:
    """Collect the facts of ``module`` and resolve the roles of its objects."""
    analysis = Analysis(collect(module), imports or ImportTable.of(module))
    find_model_classes(analysis)
    find_direct_roles(analysis)
    find_edges(analysis)
    propagate(analysis)
    find_batch_loops(analysis)
    find_models_called_in_loops(analysis)
    propagate(analysis)
    find_batch_loops(analysis)
    find_used_optimizers(analysis)
    find_anchor(analysis)
    find_device_definitions(analysis)
    drop_overwritten_devices(analysis)
    find_option_devices(analysis)
    find_flags(analysis)
    find_batch_parameters(analysis)
    find_moves(analysis)
    find_backward_calls(analysis)
    return analysis

