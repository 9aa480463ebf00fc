"""What is prepared: the objects one ``accelerator.prepare(...)`` statement takes, where it goes, and every binding
those objects flow into. Decided once per file; AC002 writes the statement, every other rule only reads it."""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from accel_convert.analysis.expressions import root_name
from accel_convert.analysis.facts import Assignment, Location, Scope
from accel_convert.analysis.imports import dotted_name
from accel_convert.analysis.roles import (
    LOADER,
    MODEL,
    OPTIMIZER,
    PREPARED_ROLES,
    SCHEDULER,
    Analysis,
    called_function,
    connected,
    handed_back,
)
from accel_convert.edits.placement import common_level

_ORDER = {MODEL: 0, OPTIMIZER: 1, LOADER: 2, SCHEDULER: 3}


@dataclass(frozen=True)
class Prepared:
    """One object ``prepare`` takes: its name in the owner scope, its role, and the assignment creating it (None for
    a parameter of the owner)."""

    key: str
    role: str
    creation: Assignment | None


@dataclass(eq=False)
class Preparation:
    """The prepare statement: its objects, the statement it goes after (or, with no creation, before), its location,
    and every binding the prepared objects flow into (aliases, helpers' parameters, factories' returns)."""

    objects: list[Prepared]
    anchor: cst.CSTNode
    after: bool
    location: Location
    bindings: set = field(default_factory=set)
    # (object, loop or call, what uses it, last created): a loop before ``anchor`` (or a function of the file called
    # there, whose loop runs then) uses the object
    late: tuple[str, cst.CSTNode, str, str] | None = None

    @property
    def position(self) -> tuple[int, int]:
        """(block, index) of the statement the prepare statement goes next to."""
        return self.location[-1]

    def precedes(self, location: Location) -> bool:
        """True for a statement that runs before the prepare statement in the same block (or inside one that does):
        what it sees of a loader is the loader as it was made."""
        block_id, index = self.position
        return any(block == block_id and position < index for block, position in location)


def candidates(analysis: Analysis, owner: Scope) -> list[Prepared]:
    """The objects the owner scope would prepare (a scheduler only when it steps per batch)."""
    found = []
    for binding, role in analysis.roles.items():
        if role not in PREPARED_ROLES:
            continue
        holder, key = binding
        assignment = analysis.creations.get(binding)
        if holder is owner:
            if assignment is not None and assignment.scope is not owner:
                assignment = None
            if assignment is None and key not in owner.params:
                assignment = _handed_in(analysis, owner, key) if role == MODEL else None
                if assignment is None:
                    continue
        elif owner.class_name is not None and holder is analysis.facts.classes.get(owner.class_name):
            if assignment is None or assignment.scope is not owner:
                continue
            key = key.replace("self.", f"{owner.self_name}.", 1)
        else:
            continue
        if role == SCHEDULER and not _stepped_per_batch(analysis, binding):
            continue
        found.append((binding, key, role, assignment))
    found = _called_name(analysis, found)
    bindings = {f[0] for f in found}
    aliased = {source for target, source, alias, _ in analysis.edges if alias and target in bindings and target != source}
    found = [f for f in found if f[0] not in aliased]
    found.sort(key=lambda f: (_ORDER[f[2]], _position(f[3])))
    return [Prepared(key, role, assignment) for _, key, role, assignment in found]


def no_model_message(analysis: Analysis, owner: Scope) -> str:
    """Why a training run whose candidates hold no model is left alone: without a prepared model nothing
    synchronises gradients, and every process would train its own copy."""
    optimizer = dotted_name(analysis.anchor.targets[0]) or "the optimizer"
    where = f"{owner.class_name}.{owner.name}" if owner.class_name else owner.name
    where = "this module" if owner.parent is None else where
    models = sorted(analysis.optimizer_models.get(analysis.anchor_binding, ()), key=lambda binding: binding[1])
    if models:
        holder, key = models[0]
        made = analysis.creations.get(models[0])
        if made is not None and made.scope is not owner:
            found = f"`{optimizer}` steps `{key}`, which is created in `{made.scope.name}`, not in `{where}`"
            advice = "create the model where the optimizer is created"
        elif any(
            isinstance(scope, Scope) and name in scope.params
            for scope, name in connected(analysis, models[0], upstream=True) | {models[0]}
        ):
            found = f"`{optimizer}` steps `{key}`, which `{where}` does not create: it comes from a caller"
            advice = "convert the module that creates the model together with this one, or create it here"
        else:
            found = (
                f"`{optimizer}` steps `{key}`, whose creation in `{where}` the converter does not follow (such as "
                "`a = b = Net()`)"
            )
            advice = "create it with a plain assignment, `model = Net()`"
    else:
        found = f"`{optimizer}` steps no model of this file (its parameters are not a module's)"
        advice = "keep the parameters in an `nn.Module` and pass it to the optimizer"
    return (
        f"nothing converted: `accelerator.prepare` would get no model ({found}), so under several processes nothing "
        f"would synchronise the gradients and every process would train its own copy; {advice}"
    )


def place(analysis: Analysis, owner: Scope, objects: list[Prepared]) -> Preparation:
    """Where the prepare statement goes: after the last creation, at the level holding all of them (at the top of
    the owner's body when every object is a parameter); ``late`` names the model, optimizer or scheduler a loop
    before that point already uses, the loop, and the object created last (the prepare would come too late for it). A loop that only reads a loader
    before the prepare (a peek at one batch to size a layer, statistics for normalisation) sees the whole unprepared
    loader in every process, as the original did, and does not make the prepare late."""
    made = [item for item in objects if item.creation is not None]
    created = [item.creation for item in made]
    if created:
        depth, block_id, indices = common_level([assignment.location for assignment in created])
        index = max(indices)
        anchor = analysis.facts.statement_at(block_id, index)
        location = created[0].location[:depth] + ((block_id, index),)
        late = _used_in_an_earlier_loop(analysis, owner, objects, block_id, index)
        if late is not None:
            last = made[indices.index(index)].key
            return Preparation(objects, anchor, True, location, set(), late=(*late, last))
    else:
        block_id = owner.body_block
        anchor = analysis.facts.blocks[block_id].body[0]
        location = owner.location + ((block_id, 0),)
    reach: set = set()
    for item in objects:
        reach |= connected(analysis, analysis.binding(owner, item.key))
    return Preparation(objects, anchor, bool(created), location, reach | handed_back(analysis, reach))


def _used_in_an_earlier_loop(
    analysis: Analysis, owner: Scope, objects: list[Prepared], block_id: int, index: int
) -> tuple[str, cst.CSTNode, str] | None:
    """(object, loop, what) for a loop that sits before ``index`` in the block and runs the model, an optimizer or a
    scheduler (calls it, calls a method of it, or hands it to a function); reading parameters to print or
    initialise them (``model.named_parameters()``) is not running it. A call there of a function of the file that
    has a loop and is handed one of them counts too (``train_model(model, optimizer, loader)``)."""
    roots = {item.key.split(".")[0] for item in objects if item.role != LOADER}
    for site in analysis.facts.calls:
        if site.scope is not owner or not site.loops:
            continue
        used = _runs(site.node, roots)
        if used is None:
            continue
        for loop in site.loops:
            if loop.scope is owner and any(b == block_id and i <= index for b, i in loop.location):
                return used, loop.node, "this loop uses"
    for site in analysis.facts.calls:  # train_model(model, optimizer, ...) before the prepare: its loop runs now
        if site.scope is not owner or site.loops or not any(b == block_id and i < index for b, i in site.location):
            continue
        callee = called_function(analysis, site)
        used = _handed(site.node, roots) if callee is not None and _has_loop(analysis, callee[0]) else None
        if used is not None:
            return used, site.node, f"`{analysis.code(site.node.func)}(...)` runs a loop that uses"
    return None


def _handed(call: cst.Call, roots: set[str]) -> str | None:
    return next((root_name(arg.value) for arg in call.args if root_name(arg.value) in roots), None)


def _has_loop(analysis: Analysis, function: Scope) -> bool:
    return any(loop.scope is function for loop in analysis.facts.loops)


_INSPECTING = {"parameters", "named_parameters", "buffers", "named_buffers", "modules", "named_modules", "children", "named_children", "state_dict"}
_HARMLESS = {"print", "len", "isinstance", "type", "id", "repr", "str"}


def _runs(call: cst.Call, roots: set[str]) -> str | None:
    """The object of ``roots`` that ``call`` runs: ``model(x)``, ``optimizer.step()``, ``train(model, ...)``."""
    func = dotted_name(call.func)
    if func is not None:
        root, _, rest = func.partition(".")
        if root in roots and rest.rsplit(".", 1)[-1] not in _INSPECTING:
            return root
        if func in _HARMLESS:
            return None
    elif root_name(call.func) in roots:  # model.blocks[0](x)
        return root_name(call.func)
    for arg in call.args:
        root = root_name(arg.value)
        if root in roots:
            return root
    return None


def _position(assignment) -> tuple:
    return tuple(index for _, index in assignment.location) if assignment is not None else ()


def _handed_in(analysis: Analysis, owner: Scope, key: str) -> Assignment | None:
    """``model = self.model`` (or ``model, config = self.model, self.config``) in a method that owns the run, where
    ``self.model`` is set in ``__init__`` from one of its parameters (``Trainer(config, model, dataset)``): the model
    comes from whoever constructs the class, and the method prepares its own name for it. The assignment, or None."""
    if owner.class_name is None or owner.self_name is None:
        return None
    init = analysis.facts.classes[owner.class_name].methods.get("__init__")
    if init is None or init.self_name is None:
        return None
    for assignment in analysis.facts.assignments:
        if assignment.scope is not owner:
            continue
        for target, value in _pairs(assignment):
            if dotted_name(target) != key or not isinstance(value, cst.Attribute):
                continue
            if dotted_name(value.value) == owner.self_name and _set_from_parameter(analysis, init, value.attr.value):
                return assignment
    return None


def _pairs(assignment: Assignment) -> list[tuple[cst.BaseExpression, cst.BaseExpression]]:
    """(target, value) of a plain or element-wise tuple assignment (``a, b = x, y``)."""
    if len(assignment.targets) == 1:
        return [(assignment.targets[0], assignment.value)]
    value = assignment.value
    if isinstance(value, (cst.Tuple, cst.List)) and len(value.elements) == len(assignment.targets):
        return list(zip(assignment.targets, [element.value for element in value.elements]))
    return []


def _set_from_parameter(analysis: Analysis, init: Scope, attribute: str) -> bool:
    """``self.<attribute>`` is assigned in ``__init__`` from a parameter (moves of it aside: ``self.model =
    self.model.to(device)``), and nowhere else."""
    target = f"{init.self_name}.{attribute}"
    values = []
    for assignment in analysis.facts.assignments:
        for candidate, value in _pairs(assignment):
            name = dotted_name(candidate)
            if name is not None and name.split(".", 1)[-1] == attribute and name.split(".", 1)[0] in ("self", init.self_name):
                if assignment.scope is not init:
                    return False
                values.append(analysis.strip(value, init))
    from_parameter = [value for value in values if isinstance(value, cst.Name) and value.value in init.params]
    others = [value for value in values if dotted_name(value) != target and value not in from_parameter]
    return bool(from_parameter) and not others


def _called_name(analysis: Analysis, found: list) -> list:
    """The name an alias gives a model is what is prepared (``optimizer = SGD(net.parameters())`` after
    ``net = model``), unless the training loop calls the model by the aliased name only: with
    ``model_without_ddp = model``, the optimizer built from ``model_without_ddp`` and ``model(x)`` in the loop,
    ``model`` is prepared where the alias is made (the bare alias still holds the same module and parameters)."""
    out = []
    for binding, key, role, assignment in found:
        if role == MODEL and not _called_per_batch(analysis, binding):
            called = [
                source
                for target, source, alias, _ in analysis.edges
                if alias and target == binding and source != binding and source[0] is binding[0]
                and _called_per_batch(analysis, source)
            ]
            if len(called) == 1:
                binding, key = called[0], called[0][1]
        out.append((binding, key, role, assignment))
    return out


def _called_per_batch(analysis: Analysis, binding, seen: frozenset = frozenset()) -> bool:
    """The model ``binding`` holds is called in a loop over batches (``model(x)``), here or in a function it is
    handed to (``train_one_epoch(model, loader, ...)``)."""
    for site in analysis.facts.calls_of(binding[1]):
        if analysis.binding(site.scope, binding[1]) == binding and any(loop in analysis.batch_loops for loop in site.loops):
            return True
    seen = seen | {binding}
    return any(
        _called_per_batch(analysis, target, seen)
        for target, source, alias, _ in analysis.edges
        if source == binding and not alias and target[0] is not binding[0] and target not in seen
    )


def _stepped_per_batch(analysis: Analysis, binding) -> bool:
    reach = connected(analysis, binding)
    for site in analysis.facts.method_calls("step"):
        if not any(loop in analysis.batch_loops for loop in site.loops):
            continue
        key = dotted_name(site.node.func.value)
        if key is not None and analysis.binding(site.scope, key) in reach:
            return True
    return False
