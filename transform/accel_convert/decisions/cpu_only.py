"""Whether the converted script must stay on the CPU to compute what the original did.

A script that never names a device runs on the CPU everywhere. Converted, its prepared model goes to the
accelerator's device (a GPU where there is one), and so do the batches of prepared loaders, but a tensor the script
makes itself and feeds the model (``x = torch.randn(N, D)``, ``torch.from_numpy(state)``, a hand-made batch) stays
on the CPU: the first forward fails on a GPU machine. Such a script is converted with ``Accelerator(cpu=True)``,
which keeps it on the CPU as the original was, on one process and on N.
"""

from __future__ import annotations

import libcst as cst

from accel_convert.analysis import symbols
from accel_convert.analysis.facts import CallSite
from accel_convert.analysis.imports import dotted_name
from accel_convert.analysis.loops import batch_loaders
from accel_convert.analysis.roles import MODEL

_DEVICE_KEYWORDS = frozenset({"device", "device_ids", "output_device", "map_location"})


def unplaced_model_input(decisions) -> CallSite | None:
    """The first call of a prepared model fed something no prepared loader yields, in a script that places
    nothing on a device itself; None where there is none (or the script names devices)."""
    analysis = decisions.analysis
    if decisions.preparation is None or _names_a_device(analysis):
        return None
    prepared = decisions.prepared
    models = {item.key for item in decisions.preparation.objects if item.role == MODEL}
    for site in analysis.facts.calls:
        key = dotted_name(site.node.func)
        binding = analysis.binding(site.scope, key) if key is not None else None
        if binding not in prepared or (key not in models and analysis.roles.get(binding) != MODEL):
            continue
        for arg in site.node.args:
            if arg.keyword is not None and arg.keyword.value == "dtype":
                continue
            loaders = batch_loaders(analysis, site, arg.value)
            if not loaders or not loaders <= prepared:
                return site
    return None


def _names_a_device(analysis) -> bool:
    """A device definition, a device move, a "CUDA is available" flag or check, a ``device=`` argument, or any
    other ``torch.cuda`` call or ``"cuda"`` argument."""
    if analysis.device_definitions or analysis.moves or analysis.flags or analysis.option_devices:
        return True
    for site in analysis.facts.calls:
        qualified = analysis.qualify(site.node.func) or ""
        if qualified in symbols.AVAILABILITY_CHECKS or qualified.startswith("torch.cuda.") or qualified in symbols.GRAD_SCALERS:
            return True  # torch.cuda.manual_seed(...), a GradScaler (mixed precision): written for a GPU
        if any(isinstance(arg.value, cst.SimpleString) and arg.value.evaluated_value == "cuda" for arg in site.node.args):
            return True  # torch.autocast("cuda")
        if any(arg.keyword is not None and arg.keyword.value in _DEVICE_KEYWORDS for arg in site.node.args):
            return True
        if isinstance(site.node.func, cst.Attribute) and site.node.func.attr.value in ("cuda", "to"):
            return True
    return False
