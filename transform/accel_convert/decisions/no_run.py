"""Why a file with training code has no training run the converter can convert: the whole-file decline's reasons."""

from __future__ import annotations

from accel_convert.analysis.roles import Analysis
from accel_convert.edits.plan import Pending
from accel_convert.model import Diagnostic

SETUP = "AC001"


def reasons(analysis: Analysis) -> list[Pending]:
    """AC001 diagnostics saying why nothing is converted (empty when the file has no training loop at all)."""
    site = next((site for site in analysis.backward_calls if site.loops), None)
    steps_in_loops = any(site.loops for site in analysis.facts.method_calls("step"))
    if site is None or not steps_in_loops:
        return []  # no optimizer-like step in a loop: gradient checks and the like, not a training loop
    message = (
        "training loop not recognised (no `torch.optim` optimizer created in this file is stepped in a loop); "
        "nothing converted"
    )
    return [Pending(Diagnostic, SETUP, site.node, message, None)]
