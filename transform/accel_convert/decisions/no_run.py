"""Why a file with training code has no training run the converter can convert: the whole-file decline's reasons.

Every declined file with a backward, an optimizer step, a device move or a hand-written distributed setup says why,
naming what it found: an optimizer stepped through a loop over several (``for opt in optimizers:``) or out of a
dict or list (``optimizers["D"].step()``), an in-file
subclass of ``torch.optim.Optimizer``, an optimizer from a call (a factory, ``model.configure_optimizers()``), or no
training step in this file at all (the loop lives in another module). Said once: a loop in a helper class that is
handed its optimizer from outside is AC021's to explain, and AC021 stays silent where AC001 named a reason.
"""

from __future__ import annotations

import libcst as cst

from accel_convert.analysis.imports import dotted_name
from accel_convert.analysis.roles import Analysis
from accel_convert.edits.plan import Pending
from accel_convert.model import NOTE, Diagnostic

SETUP = "AC001"
_DISTRIBUTED = ("init_process_group", "DistributedDataParallel", "DataParallel", "spawn")
_TAIL = "nothing converted"


def reasons(analysis: Analysis) -> list[Pending]:
    """AC001 diagnostics saying why nothing is converted (empty when the file has no training code at all)."""
    site = next((site for site in analysis.backward_calls if site.loops), None)
    steps = [step for step in analysis.facts.method_calls("step") if step.loops]
    if site is not None and steps:
        message = _unrecognised(analysis, steps)
        if message is None and _in_helper_class(analysis, site):
            return []  # AC021 says why, once: the helper class is given its optimizer from outside
        return [Pending(Diagnostic, SETUP, site.node, message or _GENERIC, None)]
    return _elsewhere(analysis, site or next(iter(analysis.backward_calls), None))


_GENERIC = f"training loop not recognised (no `torch.optim` optimizer created in this file is stepped in a loop); {_TAIL}"


def _in_helper_class(analysis: Analysis, site) -> bool:
    return site.scope.class_name not in (None, *analysis.model_classes)


def _unrecognised(analysis: Analysis, steps) -> str | None:
    """Why the loop that calls backward and steps is not a training loop the converter knows (None: nothing more
    precise than that no optimizer of this file is stepped)."""
    own = _optimizer_subclasses(analysis)
    if own:
        return (
            f"training loop not recognised: `{own[0]}` is this file's own subclass of `torch.optim.Optimizer`, which "
            f"the converter does not take for an optimizer; {_TAIL}"
        )
    for step in steps:
        receiver = step.node.func.value
        if isinstance(receiver, cst.Name) and any(receiver.value in loop.target_names for loop in step.loops):
            loop = next(loop for loop in step.loops if receiver.value in loop.target_names)
            iterated = loop.node.iter if isinstance(loop.node, cst.For) else None
            over = f" over `{dotted_name(iterated)}`" if iterated is not None and dotted_name(iterated) else ""
            return (
                f"training loop not recognised: the optimizers are stepped through a loop{over} "
                f"(`{receiver.value}.step()`), which the converter does not follow; step each optimizer by its own "
                f"name to have it converted; {_TAIL}"
            )
    for step in steps:
        receiver = step.node.func.value
        if isinstance(receiver, cst.Subscript) and dotted_name(receiver.value):
            container = dotted_name(receiver.value)
            return (
                f"training loop not recognised: the optimizers are held in `{container}` and stepped as "
                f"`{analysis.code(receiver)}.step()`, which the converter does not follow; bind each optimizer to a "
                f"name of its own (`optimizer_g = ...`) and step it by that name to have it converted; {_TAIL}"
            )
    for step in steps:
        key = dotted_name(step.node.func.value)
        origin = _made_by_call(analysis, step.scope, key) if key else None
        if origin is not None and origin.endswith("GradScaler") and step.node.args:
            key = dotted_name(step.node.args[0].value)  # ``scaler.step(optimizer)`` steps the optimizer
            origin = _made_by_call(analysis, step.scope, key) if key else None
        if origin is not None:
            return (
                f"training loop not recognised: `{key}` comes from `{origin}(...)`, not from a `torch.optim` class "
                f"created in this file, so the converter cannot tell it is an optimizer; {_TAIL}"
            )
    return None


def _elsewhere(analysis: Analysis, backward) -> list[Pending]:
    """A backward outside any loop, a device move or a distributed setup with no training step here."""
    optimizer = next((s for s in analysis.facts.calls if (dotted_name(s.node.func) or "").split(".")[-2:-1] == ["optim"]), None)
    if backward is not None:
        if optimizer is None or backward.scope.class_name not in (None, *analysis.model_classes):
            return []  # AC021 says why: no `torch.optim` optimizer, or the backward is in a helper class
        message = (
            "no training loop in this file (`backward()` is called outside any loop, or no optimizer is stepped in "
            f"one); if the loop that calls this code lives in another module, convert that module too; {_TAIL}"
        )
        return [Pending(Diagnostic, SETUP, backward.node, message, None)]
    setup = next((s for name in _DISTRIBUTED for s in analysis.facts.calls if _calls(s.node, name)), None)
    if setup is not None:
        message = (
            f"`{dotted_name(setup.node.func)}` sets up distributed training, but this file has no training step "
            "(no `backward()`): the loop is in another module. Convert that module too (or the whole project "
            f"folder); {_TAIL}"
        )
        return [Pending(Diagnostic, SETUP, setup.node, message, None)]
    if optimizer is not None:
        message = (
            f"`{dotted_name(optimizer.node.func)}(...)` creates an optimizer, but this file has no training step (no "
            "`backward()`): the loop is in another module. Convert that module too; "
            f"{_TAIL}"
        )
        return [Pending(Diagnostic, SETUP, optimizer.node, message, None)]
    if analysis.moves:
        move = analysis.moves[0]
        message = (
            "no training step in this file (no `backward()`): device moves are left as they are, which is right "
            "for a script that only evaluates or serves a model"
        )
        return [Pending(Diagnostic, SETUP, move.call, message, move.site.statement, NOTE)]
    return []


def _calls(call: cst.Call, name: str) -> bool:
    func = dotted_name(call.func)
    return func is not None and func.rsplit(".", 1)[-1] == name


def _optimizer_subclasses(analysis: Analysis) -> list[str]:
    found = []
    for name, info in analysis.facts.classes.items():
        bases = [dotted_name(base) or "" for base in info.bases]
        if any(base == "Optimizer" or base.endswith("optim.Optimizer") for base in bases):
            found.append(name)
    return found


def _made_by_call(analysis: Analysis, scope, key: str) -> str | None:
    """The callee of ``key = callee(...)`` in ``scope`` (the optimizer's factory), if that is how it is bound; for
    ``self.<name>``, in any method of the class."""
    attribute = key.startswith("self.") and scope.class_name is not None
    for assignment in analysis.facts.assignments:
        here = assignment.scope is scope or (attribute and assignment.scope.class_name == scope.class_name)
        if not here or not isinstance(assignment.value, cst.Call):
            continue
        if any(dotted_name(target) == key for target in assignment.targets):
            return dotted_name(assignment.value.func)
    return None
