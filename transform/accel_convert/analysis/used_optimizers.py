"""Optimizers known by what is done with them: an object made by a call the analysis cannot resolve to a
``torch.optim`` class (``model.configure_optimizers(...)``, a factory of the user's own or of a library, an in-file
subclass of ``torch.optim.Optimizer``) that is ``.step()``ped in a loop where a backward runs.

Kept apart from the constructor-based roles: a use is weaker evidence than a constructor, so the conditions are
strict. The step takes no argument (``scaler.step(optimizer)`` steps its argument; an environment's ``env.step(a)``
is no optimizer), a backward runs in the same loop or repeated function, and the object is made by a call that takes
no optimizer (that would be a scheduler: ``make_scheduler(optimizer)``) and is not a torch class of another kind. The
models it steps are the receiver of a method that made it (``model.configure_optimizers``), the receivers of
``.parameters()`` in its arguments, and arguments that hold a model; one of them must be called where the step is
(``raw_model.configure_optimizers()`` while the loop calls a wrapped ``model`` is not followed), and a script that
wraps its model in ``DistributedDataParallel`` itself is left to the constructor-based roles. Without a model it
stays unknown: there would be nothing to prepare it with. At run time ``prepare`` checks the type and names what it got.
"""

from __future__ import annotations

import libcst as cst

from accel_convert.analysis import symbols
from accel_convert.analysis.facts import Assignment, CallSite
from accel_convert.analysis.imports import dotted_name
from accel_convert.analysis.roles import (
    MODEL,
    OPTIMIZER,
    Analysis,
    Binding,
    connected,
    creation_of,
    model_binding,
    parameter_receivers,
    propagate,
    repeated_scopes,
    set_role,
)


def find_used_optimizers(analysis: Analysis) -> None:
    """Give the optimizer role to the objects stepped like one (see the module docstring), and the model role to
    what they step."""
    repeated = repeated_scopes(analysis)
    backward_places = _backward_places(analysis, repeated)
    found = False
    for site in analysis.facts.method_calls("step"):
        stepped = _stepped(analysis, site)
        if stepped is None or not _after_a_backward(site, repeated, backward_places):
            continue
        binding = analysis.binding(site.scope, stepped)
        if binding in analysis.roles:
            continue
        assignment = _made_by(analysis, binding)
        models = _models_of(analysis, assignment) if assignment is not None else None
        if not models or not _called_with_the_step(analysis, site, models):
            continue
        set_role(analysis, binding, OPTIMIZER, assignment)
        for model in models:
            analysis.optimizer_models.setdefault(binding, set()).add(model)
            set_role(analysis, model, MODEL, creation_of(analysis, model))
        found = True
    if found:
        propagate(analysis)


def _stepped(analysis: Analysis, site: CallSite) -> str | None:
    """``opt`` for ``opt.step()``, and for ``scaler.step(opt)`` with a ``GradScaler``; None for any other step."""
    receiver = site.node.func.value
    args = [arg for arg in site.node.args if arg.keyword is None]
    if not args:
        return dotted_name(receiver)
    key = dotted_name(receiver)
    made = creation_of(analysis, analysis.binding(site.scope, key)) if key is not None else None
    if made is not None and isinstance(made.value, cst.Call) and analysis.qualify(made.value.func) in symbols.GRAD_SCALERS:
        return dotted_name(args[0].value)
    return None


def _backward_places(analysis: Analysis, repeated) -> tuple[set[int], set[int]]:
    """The loops (ids) holding a ``.backward()`` call, and the repeated functions (ids of scopes) that call one."""
    loops, scopes = set(), set()
    for site in analysis.facts.method_calls("backward"):
        loops.update(id(loop) for loop in site.loops)
        if site.scope in repeated:
            scopes.add(id(site.scope))
    return loops, scopes


def _after_a_backward(site: CallSite, repeated, places: tuple[set[int], set[int]]) -> bool:
    loops, scopes = places
    return any(id(loop) in loops for loop in site.loops) or (site.scope in repeated and id(site.scope) in scopes)


def _called_with_the_step(analysis: Analysis, step: CallSite, models: set[Binding]) -> bool:
    """One of ``models`` is called in a loop that holds ``step``, or in the function that holds it: the model the
    loop trains is the one the optimizer was made from."""
    loops = {id(loop) for loop in step.loops}
    held = set(models).union(*(connected(analysis, model) for model in models))  # self.model = model
    for site in analysis.facts.calls:
        key = dotted_name(site.node.func)
        if key is None or analysis.binding(site.scope, key) not in held:
            continue
        if site.scope is step.scope or any(id(loop) in loops for loop in site.loops):
            return True
    return False


def _made_by(analysis: Analysis, binding: Binding) -> Assignment | None:
    """The one assignment of ``binding`` from a call (``self.optimizer = None`` in ``__init__`` aside)."""
    made = [
        assignment
        for assignment in analysis.facts.assignments
        if len(assignment.targets) == 1
        and isinstance(analysis.strip(assignment.value, assignment.scope), cst.Call)
        and (key := dotted_name(assignment.targets[0])) is not None
        and analysis.binding(assignment.scope, key) == binding
    ]
    return made[0] if len(made) == 1 else None


def _models_of(analysis: Analysis, assignment: Assignment) -> set[Binding] | None:
    """The models an optimizer made by ``assignment`` steps; None when the call is not one that may make an
    optimizer."""
    scope = assignment.scope
    value = analysis.strip(assignment.value, scope)
    if not isinstance(value, cst.Call) or len(assignment.targets) != 1:
        return None
    qualified = analysis.qualify(value.func)
    if qualified is not None and qualified.split(".")[0] == "torch" and not symbols.is_optimizer(qualified):
        return None  # a torch class of another kind (a scaler, a scheduler)
    if any(analysis.role_of(scope, arg.value) == OPTIMIZER for arg in value.args):
        return None  # made from an optimizer: a scheduler
    models: set[Binding] = set()
    if isinstance(value.func, cst.Attribute):  # model.configure_optimizers(...)
        owner = dotted_name(value.func.value)
        if owner is not None and analysis.qualify(value.func.value) is None:
            models.add(_wrapped(analysis, analysis.binding(scope, owner)))
    for receiver in parameter_receivers(value):
        model = model_binding(analysis, scope, receiver)  # model.fc.parameters(): the model
        if model is not None:
            models.add(model)
    for arg in value.args:
        key = dotted_name(arg.value)
        if key is not None:
            binding = analysis.binding(scope, key)
            if analysis.roles.get(binding) == MODEL or binding in analysis.candidates or _torch_module(analysis, binding):
                models.add(binding)
    return models


def _wrapped(analysis: Analysis, binding: Binding) -> Binding:
    """For the unwrapped view of a hand-wrapped model (``raw_model = model.module if ddp else model``,
    ``raw_model = model.module``, ``getattr(model, "module", model)``), the model itself: the one the loop trains and
    the one to prepare; any other binding as it is."""
    made = [a for a in analysis.facts.assignments if len(a.targets) == 1 and analysis.binding(a.scope, dotted_name(a.targets[0]) or "") == binding]
    if len(made) != 1:
        return binding
    value, scope = made[0].value, made[0].scope
    if isinstance(value, cst.IfExp):
        sides = [value.body, value.orelse]
        plain = [side for side in sides if dotted_name(side) is not None and not _is_module_of(side)]
        unwrapped = [side for side in sides if _is_module_of(side)]
        if len(plain) == 1 and len(unwrapped) == 1 and dotted_name(unwrapped[0].value) == dotted_name(plain[0]):
            return analysis.binding(scope, dotted_name(plain[0]))
    elif _is_module_of(value) and dotted_name(value.value) is not None:
        return analysis.binding(scope, dotted_name(value.value))
    elif (
        isinstance(value, cst.Call)
        and isinstance(value.func, cst.Name)
        and value.func.value == "getattr"
        and len(value.args) == 3
        and isinstance(value.args[1].value, cst.SimpleString)
        and value.args[1].value.evaluated_value == "module"
        and dotted_name(value.args[0].value) is not None
        and dotted_name(value.args[0].value) == dotted_name(value.args[2].value)
    ):
        return analysis.binding(scope, dotted_name(value.args[0].value))
    return binding


def _is_module_of(node: cst.BaseExpression) -> bool:
    return isinstance(node, cst.Attribute) and node.attr.value == "module" and dotted_name(node.value) is not None


def _torch_module(analysis: Analysis, binding: Binding) -> bool:
    """``binding`` holds a layer of ``torch.nn`` (``nn.Linear(4, 2)``, ``nn.Sequential(...)``)."""
    made = _made_by(analysis, binding)
    if made is None:
        return False
    value = analysis.strip(made.value, made.scope)
    qualified = analysis.qualify(value.func) if isinstance(value, cst.Call) else None
    return qualified is not None and qualified.startswith("torch.nn.") and qualified.rsplit(".", 1)[-1][:1].isupper()
