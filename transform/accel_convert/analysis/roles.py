"""Roles of the objects in a training script, found by qualified name and data flow (never by variable name).

Works on the ``Facts`` of one module and its ``ImportTable``: which bindings hold a model, an optimizer, a data
loader, an LR scheduler, a device or an ``Accelerator``, which optimizer anchors the training run, which
``.backward()`` calls there are. Roles flow along assignments (``self.model = model``), call arguments into parameters
of functions defined in the same file (``train(model, loader, optimizer, device)``), and return values of such
functions. ``pipeline.analyse`` runs these finders with those of ``loops`` and ``devices``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import libcst as cst

from accel_convert.analysis import symbols
from accel_convert.analysis.expressions import is_cpu_literal, is_device_literal, strip_moves
from accel_convert.analysis.facts import Assignment, CallSite, Facts, Loop, Scope
from accel_convert.analysis.imports import ImportTable, dotted_name
from accel_convert.analysis.traverse import Walker

if TYPE_CHECKING:
    from accel_convert.analysis.devices import DeviceDefinition, Flag, Move

MODEL, OPTIMIZER, LOADER, SCHEDULER, DEVICE, ACCELERATOR = (
    "model",
    "optimizer",
    "loader",
    "scheduler",
    "device",
    "accelerator",
)
PREPARED_ROLES = (MODEL, OPTIMIZER, LOADER, SCHEDULER)

Binding = tuple[object, str]  # (owning Scope, or ClassInfo for attributes of self, dotted key)


@dataclass(eq=False)
class Analysis:
    facts: Facts
    imports: ImportTable
    roles: dict[Binding, str] = field(default_factory=dict)
    origins: dict[Binding, Binding] = field(default_factory=dict)
    creations: dict[Binding, Assignment] = field(default_factory=dict)  # the assignment that made the object
    edges: list[tuple[Binding, Binding, bool, Assignment | None]] = field(default_factory=list)  # target, source, alias
    model_classes: set[str] = field(default_factory=set)
    loader_classes: set[str] = field(default_factory=set)  # the file's own subclasses of DataLoader
    candidates: set[Binding] = field(default_factory=set)  # constructed like a model; a model if used as one
    batch_loops: dict[Loop, set[str]] = field(default_factory=dict)
    batch_sources: dict[Loop, set[Binding]] = field(default_factory=dict)  # the loaders a batch loop iterates
    # (function, parameter) given batches at every call -> the loaders they come from
    batch_parameters: dict[tuple[Scope, str], set[Binding]] = field(default_factory=dict)
    device_definitions: list[DeviceDefinition] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)
    moves: list[Move] = field(default_factory=list)
    backward_calls: list[CallSite] = field(default_factory=list)
    option_devices: dict[Binding, cst.Call] = field(default_factory=dict)  # args.device -> its add_argument call
    has_accelerator: bool = False
    anchor: Assignment | None = None  # the first optimizer stepped in a loop: its scope owns the training run
    anchor_binding: Binding | None = None  # the binding the anchor assigns that holds that optimizer
    optimizer_models: dict[Binding, set[Binding]] = field(default_factory=dict)  # optimizer -> models it steps
    _factories: dict[Scope, list | None] = field(default_factory=dict)  # function -> what it returns (factory_returns)
    _self_calling: set[Scope] | None = None  # functions that call themselves
    model_moves: dict[int, Binding] = field(default_factory=dict)  # id(move chained on a model's assignment) -> model

    # names ----------------------------------------------------------------------------------------------------------
    def binding(self, scope: Scope, key: str) -> Binding:
        root, _, rest = key.partition(".")
        if scope.class_name is not None and rest and root == scope.self_name:
            return (self.facts.classes[scope.class_name], "self." + rest)
        current = scope
        while current is not None:
            if root in current.params or root in current.assigned:
                return (current, key)
            current = current.parent
        return (self.facts.module_scope, key)

    def role_of(self, scope: Scope, node: cst.BaseExpression) -> str | None:
        key = dotted_name(node)
        return None if key is None else self.roles.get(self.binding(scope, key))

    def qualify(self, node: cst.BaseExpression) -> str | None:
        return self.imports.qualify(node)

    def code(self, node: cst.CSTNode) -> str:
        return self.facts.module.code_for_node(node)

    # moves ----------------------------------------------------------------------------------------------------------
    def is_device_expression(self, node: cst.BaseExpression, scope: Scope | None = None) -> bool:
        if is_device_literal(node):
            return True
        if isinstance(node, cst.Call):
            return self.qualify(node.func) in symbols.DEVICE_CONSTRUCTORS
        if isinstance(node, cst.IfExp):
            return self.is_device_expression(node.body, scope) and self.is_device_expression(node.orelse, scope)
        if scope is not None:
            return self.role_of(scope, node) == DEVICE
        return False

    def is_move_call(self, call: cst.Call, scope: Scope) -> bool:
        if not isinstance(call.func, cst.Attribute):
            return False
        method = call.func.attr.value
        if method == "cuda":
            return all(arg.keyword is None or arg.keyword.value in ("non_blocking", "device") for arg in call.args)
        if method != "to":
            return False
        if any(is_cpu_literal(arg.value) for arg in call.args):
            return False  # an explicit move to the CPU is kept
        if any(arg.keyword is not None and arg.keyword.value == "device" for arg in call.args):
            return True
        positional = [arg for arg in call.args if arg.keyword is None and not arg.star]
        if positional and isinstance(positional[0].value, cst.Integer):
            return True  # .to(0): the GPU of that index
        return bool(positional) and self.is_device_expression(positional[0].value, scope)

    def strip(self, node: cst.BaseExpression, scope: Scope) -> cst.BaseExpression:
        return strip_moves(node, lambda call: self.is_move_call(call, scope))


def find_anchor(analysis: Analysis) -> None:
    """The training run: the first optimizer (in source order) whose ``step()`` is called inside a loop (or in a
    function of the file called inside one)."""
    repeated = repeated_scopes(analysis)
    stepped = set()
    for site in analysis.facts.calls:
        func = site.node.func
        in_loop = site.loops or site.comprehensions or site.scope in repeated
        if in_loop and isinstance(func, cst.Attribute) and func.attr.value == "step":
            # optimizer.step(), or scaler.step(optimizer) with AMP
            for stepped_node in (func.value, *(arg.value for arg in site.node.args if arg.keyword is None)):
                key = dotted_name(stepped_node)
                if key is not None:
                    stepped.add(analysis.binding(site.scope, key))
    candidates: list[tuple[Binding, Assignment | None]] = []
    for assignment in analysis.facts.assignments:
        key = dotted_name(assignment.targets[0]) if len(assignment.targets) == 1 else None
        if key is None:
            continue
        binding = analysis.binding(assignment.scope, key)
        if analysis.creations.get(binding) is assignment and analysis.origins.get(binding) == binding:
            candidates.append((binding, assignment))
    # optimizers a factory creates in its return statement (return torch.optim.SGD(...))
    candidates += [(binding, None) for binding in analysis.roles if binding[1].startswith("return[")]
    for binding, assignment in candidates:
        if analysis.roles.get(binding) != OPTIMIZER or not connected(analysis, binding) & stepped:
            continue
        binding, assignment, models = _hand_out(analysis, binding, assignment, stepped)
        if assignment is None:
            continue
        analysis.anchor, analysis.anchor_binding = assignment, binding
        for model in models:
            set_role(analysis, model, MODEL, creation_of(analysis, model))
        propagate(analysis)
        return


def repeated_scopes(analysis: Analysis) -> set[Scope]:
    """Functions of the file called inside a loop (or a comprehension), or from one that is: their calls repeat."""
    repeated: set[Scope] = set()
    changed = True
    while changed:
        changed = False
        for site in analysis.facts.calls:
            if site.loops or site.comprehensions or site.scope in repeated:
                callee = called_function(analysis, site)
                if callee is not None and callee[0] not in repeated:
                    repeated.add(callee[0])
                    changed = True
    return repeated


def _hand_out(analysis: Analysis, binding: Binding, assignment: Assignment | None, stepped: set[Binding]):
    """Follow an optimizer that a factory of the file creates and returns to the one call of it that receives it
    (``model, optimizer = load_objects()``), as long as every ``step()`` of it happens downstream of that call and the
    models it steps reach the caller too (returned with it, or passed in as arguments): the caller owns the
    training run and prepares what it receives. Returns the optimizer's binding and creating assignment where the
    run is prepared, with the bindings of its models there."""
    models = set(analysis.optimizer_models.get(binding, ()))
    while True:
        function = binding[0]
        if not isinstance(function, Scope) or function.parent is None or factory_returns(analysis, function) is None:
            break
        outs = [(t, via) for t, source, alias, via in analysis.edges if source == binding and not alias and via]
        calls = [site for site in analysis.facts.calls if called_function(analysis, site) == (function, 0)]
        if len(outs) != 1 or len(calls) != 1 or analysis.creations.get(outs[0][0]) is not outs[0][1]:
            break
        target, via = outs[0]
        if not connected(analysis, binding) & stepped <= connected(analysis, target):
            break  # stepped inside the factory too
        received = _models_received(analysis, function, models, via, calls[0])
        if received is None:
            break
        binding, assignment, models = target, via, received
    return binding, assignment, models


def _models_received(analysis: Analysis, function: Scope, models: set[Binding], via: Assignment, site: CallSite):
    """The caller's bindings of the ``models`` a factory's optimizer steps: returned by the call ``via`` assigns,
    or passed to it as arguments (module-level models stay as they are); None when one cannot be followed."""
    received = set()
    for model in models:
        holder, key = model
        if holder is analysis.facts.module_scope:
            received.add(model)
            continue
        if holder is not function:
            return None
        if key in function.params:
            argument = _argument_for(site.node, function.params.index(key), key)
            argument_key = dotted_name(argument) if argument is not None else None
            if argument_key is None:
                return None
            received.add(analysis.binding(site.scope, argument_key))
            continue
        returned = [t for t, source, alias, a in analysis.edges if source == model and not alias and a is via]
        if len(returned) != 1:
            return None
        received.add(returned[0])
    return received


def _argument_for(call: cst.Call, position: int, name: str) -> cst.BaseExpression | None:
    """The expression a call passes for the parameter ``name`` at ``position``."""
    for index, arg in enumerate(call.args):
        if arg.star:
            return None
        if arg.keyword is not None:
            if arg.keyword.value == name:
                return arg.value
        elif index == position:
            return arg.value
    return None


def find_model_classes(analysis: Analysis) -> None:
    """The file's classes that are modules (``nn.Module`` subclasses) and data loaders (``DataLoader`` subclasses),
    directly or through another class of the file."""
    _subclasses(analysis, symbols.MODULE_BASES, analysis.model_classes)
    _subclasses(analysis, symbols.DATALOADERS, analysis.loader_classes)
    # prepare rebuilds a loader from its dataset and settings: one that iterates its own way is not a loader to it
    analysis.loader_classes -= {
        name for name in analysis.loader_classes if {"__iter__", "__len__", "__next__"} & set(analysis.facts.classes[name].methods)
    }


def _subclasses(analysis: Analysis, bases: frozenset, found: set[str]) -> None:
    classes = analysis.facts.classes
    changed = True
    while changed:
        changed = False
        for name, info in classes.items():
            if name in found:
                continue
            for base in info.bases:
                if analysis.qualify(base) in bases or (isinstance(base, cst.Name) and base.value in found):
                    found.add(name)
                    changed = True
                    break


def set_role(analysis: Analysis, binding: Binding, role: str, assignment: Assignment | None) -> bool:
    if binding in analysis.roles:
        return False
    analysis.roles[binding] = role
    analysis.origins[binding] = binding
    if assignment is not None:
        analysis.creations[binding] = assignment
    return True


def parameter_receivers(node: cst.CSTNode) -> list[cst.BaseExpression]:
    """Receivers of ``.parameters()`` / ``.named_parameters()`` calls anywhere inside ``node``."""
    found = []

    class _Finder(Walker):
        def visit_Call(self, call: cst.Call) -> None:
            func = call.func
            if isinstance(func, cst.Attribute) and func.attr.value in ("parameters", "named_parameters"):
                found.append(func.value)

    _Finder().walk(node)
    return found


def optimizer_parameter_receivers(analysis: Analysis, scope: Scope, call: cst.Call) -> list[cst.BaseExpression]:
    """Receivers of the ``.parameters()`` calls that feed an optimizer: in its arguments, and in the value of a name
    passed to it that this scope assigns (``params = list(a.parameters()) + list(b.fc.parameters())``)."""
    given = [arg for arg in call.args if arg.keyword is None][:1]
    given += [arg for arg in call.args if arg.keyword is not None and arg.keyword.value == "params"]
    passed = {arg.value.value for arg in given if isinstance(arg.value, cst.Name)}
    sources = [call]
    for assignment in analysis.facts.assignments:
        target = assignment.targets[0] if len(assignment.targets) == 1 else None
        if assignment.scope is scope and isinstance(target, cst.Name) and target.value in passed:
            sources.append(assignment.value)
    return [receiver for source in sources for receiver in parameter_receivers(source)]


def model_binding(analysis: Analysis, scope: Scope, receiver: cst.BaseExpression) -> Binding | None:
    key = dotted_name(receiver)
    if key is None:
        return None
    parts = key.split(".")
    self_attribute = scope.class_name is not None and parts[0] == scope.self_name
    whole = analysis.binding(scope, key)
    if len(parts) == 1 or (self_attribute and len(parts) == 2):
        return whole
    # model.fc.parameters(): the model is the object the attribute chain starts from
    prefix = ".".join(parts[:2] if self_attribute else parts[:1])
    return analysis.binding(scope, prefix)


def find_direct_roles(analysis: Analysis) -> None:
    for assignment in analysis.facts.assignments:
        if len(assignment.targets) != 1:
            continue
        target = dotted_name(assignment.targets[0])
        if target is None:
            continue
        scope = assignment.scope
        _classify(analysis, analysis.binding(scope, target), scope, assignment.value, assignment)
    for function in list(analysis.facts.functions.values()):
        for index, element in enumerate(factory_returns(analysis, function) or ()):
            if dotted_name(element) is None:
                _classify(analysis, returned_binding(function, index), function, element, None)
    for site in analysis.facts.calls:
        if analysis.qualify(site.node.func) in symbols.ACCELERATOR_CLASSES:
            analysis.has_accelerator = True
    # a model found through .parameters() before its constructor was seen
    for binding, role in analysis.roles.items():
        if role == MODEL and binding not in analysis.creations:
            assignment = creation_of(analysis, binding)
            if assignment is not None:
                analysis.creations[binding] = assignment


def _classify(analysis: Analysis, binding: Binding, scope: Scope, value, assignment: Assignment | None) -> None:
    """The role of the object ``value`` creates (held by ``binding``; ``assignment`` None for a returned value)."""
    value = analysis.strip(value, scope)
    if not isinstance(value, cst.Call):
        return
    qualified = analysis.qualify(value.func)
    if qualified is None:
        if isinstance(value.func, cst.Name) and value.func.value in analysis.model_classes:
            analysis.candidates.add(binding)
            if assignment is not None:
                analysis.creations.setdefault(binding, assignment)
        elif isinstance(value.func, cst.Name) and value.func.value in analysis.loader_classes:
            set_role(analysis, binding, LOADER, assignment)
        return
    if symbols.is_optimizer(qualified):
        set_role(analysis, binding, OPTIMIZER, assignment)
        for receiver in optimizer_parameter_receivers(analysis, scope, value):
            model = model_binding(analysis, scope, receiver)
            if model is not None:
                analysis.optimizer_models.setdefault(binding, set()).add(model)
                set_role(analysis, model, MODEL, analysis.creations.get(model))
    elif qualified in symbols.DATALOADERS:
        set_role(analysis, binding, LOADER, assignment)
    elif symbols.is_scheduler(qualified):
        set_role(analysis, binding, SCHEDULER, assignment)
    elif qualified in symbols.ACCELERATOR_CLASSES:
        analysis.has_accelerator = True
        set_role(analysis, binding, ACCELERATOR, assignment)
    elif symbols.is_model_constructor(qualified):
        analysis.candidates.add(binding)
        if assignment is not None:
            analysis.creations.setdefault(binding, assignment)


def creation_of(analysis: Analysis, binding: Binding) -> Assignment | None:
    for assignment in analysis.facts.assignments:
        if len(assignment.targets) == 1:
            key = dotted_name(assignment.targets[0])
            if key is not None and analysis.binding(assignment.scope, key) == binding:
                return assignment
    return None


def called_function(analysis: Analysis, site: CallSite) -> tuple[Scope, int] | None:
    """The function or method defined in this file that ``site`` calls, and how many leading params it skips."""
    func = site.node.func
    facts = analysis.facts
    if isinstance(func, cst.Name):
        if func.value in facts.functions:
            return facts.functions[func.value], 0
        info = facts.classes.get(func.value)
        if info is not None and "__init__" in info.methods:
            return info.methods["__init__"], 1
        return None
    if isinstance(func, cst.Attribute):
        owner = func.value
        if isinstance(owner, cst.Name) and site.scope.class_name and owner.value == site.scope.self_name:
            method = facts.classes[site.scope.class_name].methods.get(func.attr.value)
            return (method, 1) if method is not None else None
        if isinstance(owner, cst.Call) and isinstance(owner.func, cst.Name) and owner.func.value in facts.classes:
            method = facts.classes[owner.func.value].methods.get(func.attr.value)
            return (method, 1) if method is not None else None
        if isinstance(owner, cst.Name):  # trainer = Trainer(...), then trainer.train(loader)
            made = [a for a in facts.assignments if a.scope is site.scope and len(a.targets) == 1
                    and isinstance(a.targets[0], cst.Name) and a.targets[0].value == owner.value]
            if len(made) == 1 and isinstance(made[0].value, cst.Call) and isinstance(made[0].value.func, cst.Name):
                info = facts.classes.get(made[0].value.func.value)
                method = info.methods.get(func.attr.value) if info is not None else None
                if method is not None and method.class_name == made[0].value.func.value:
                    return method, 1
    return None


def find_edges(analysis: Analysis) -> None:
    """Data flow: ``target <- source`` pairs through assignments, call arguments and return values."""
    facts = analysis.facts
    for assignment in facts.assignments:
        scope = assignment.scope
        value = analysis.strip(assignment.value, scope)
        targets = [dotted_name(target) for target in assignment.targets]
        if len(targets) == 1:
            sources = [value]
        elif isinstance(value, (cst.Tuple, cst.List)) and len(value.elements) == len(targets):
            sources = [analysis.strip(element.value, scope) for element in value.elements]
        else:
            sources = [None] * len(targets)
        returned = _returned_bindings(analysis, value, len(targets)) if isinstance(value, cst.Call) else None
        for index, (target, source) in enumerate(zip(targets, sources)):
            if target is None:
                continue
            target_binding = analysis.binding(scope, target)
            key = (dotted_name(source) or keyword_key(scope, source)) if source is not None else None
            if key is not None:
                analysis.edges.append((target_binding, analysis.binding(scope, key), True, assignment))
            elif returned is not None and returned[index] is not None:
                analysis.edges.append((target_binding, returned[index], False, assignment))
    # return make_loader(a), make_loader(b): what another factory returns, returned again
    for function in list(facts.functions.values()):
        for index, element in enumerate(factory_returns(analysis, function) or ()):
            element = analysis.strip(element, function)
            returned = _returned_bindings(analysis, element, 1) if isinstance(element, cst.Call) else None
            if returned is not None and returned[0] is not None:
                analysis.edges.append((returned_binding(function, index), returned[0], False, None))
    for site in facts.calls:
        callee = called_function(analysis, site)
        if callee is None:
            continue
        function, skip = callee
        params = function.params
        for index, arg in enumerate(site.node.args):
            if arg.star:
                break
            key = dotted_name(arg.value)
            if key is None:
                continue
            if arg.keyword is not None:
                name = arg.keyword.value
            elif skip + index < len(params):
                name = params[skip + index]
            else:
                continue
            star = _star_kwarg(function)
            if name not in function.params and arg.keyword is not None and star is not None:
                name = f"{star}.{name}"  # Trainer(model=model) into ``def __init__(self, **kwargs)``: kwargs["model"]
            if name.split(".", 1)[0] in function.params:
                analysis.edges.append(((function, name), analysis.binding(site.scope, key), False, None))


def _star_kwarg(function: Scope) -> str | None:
    node = function.node
    star = node.params.star_kwarg if isinstance(node, cst.FunctionDef) else None
    return star.name.value if star is not None else None


def keyword_key(scope: Scope, node: cst.BaseExpression) -> str | None:
    """``kwargs.model`` for ``kwargs["model"]`` read in a function whose ``**kwargs`` it is: the binding the call
    site's ``model=...`` flows into (None for anything else)."""
    if not (isinstance(node, cst.Subscript) and isinstance(node.value, cst.Name) and len(node.slice) == 1):
        return None
    index = node.slice[0].slice
    if not (isinstance(index, cst.Index) and isinstance(index.value, cst.SimpleString)):
        return None
    name = index.value.evaluated_value
    if not (isinstance(name, str) and name.isidentifier() and node.value.value == _star_kwarg(scope)):
        return None
    return f"{node.value.value}.{name}"


def _returned_bindings(analysis: Analysis, call: cst.Call, count: int) -> list[Binding | None] | None:
    """What the ``count`` targets of ``a, b = f(...)`` receive, when ``f`` is a factory of the file."""
    if not isinstance(call.func, cst.Name) or call.func.value not in analysis.facts.functions:
        return None
    function = analysis.facts.functions[call.func.value]
    elements = factory_returns(analysis, function)
    if elements is None or len(elements) != count:
        return None
    result = []
    for index, element in enumerate(elements):
        key = dotted_name(element)
        result.append(analysis.binding(function, key) if key is not None else returned_binding(function, index))
    return result


def returned_binding(function: Scope, index: int) -> Binding:
    """The binding that stands for an object a function creates in its ``return`` (``return DataLoader(...)``)."""
    return (function, f"return[{index}]")


def factory_returns(analysis: Analysis, function: Scope) -> list[cst.BaseExpression] | None:
    """What a function of the file hands back, position by position (``return a, b`` -> [a, b]), when the analysis
    can follow it: a module-level function (not a method) that does not call itself, ends with ``return <value>``,
    and returns the same expressions at every ``return``. None otherwise (the caller's objects stay unknown)."""
    if function in analysis._factories:
        return analysis._factories[function]
    analysis._factories[function] = result = _factory_returns(analysis, function)
    return result


def _self_calling(analysis: Analysis) -> set[Scope]:
    """Module-level functions that call themselves (from their body or a function nested in it)."""
    if analysis._self_calling is None:
        functions = analysis.facts.functions
        analysis._self_calling = set()
        for site in analysis.facts.calls:
            func = site.node.func
            function = functions.get(func.value) if isinstance(func, cst.Name) else None
            if function is not None and site.scope.sees(function):
                analysis._self_calling.add(function)
    return analysis._self_calling


def _factory_returns(analysis: Analysis, function: Scope) -> list[cst.BaseExpression] | None:
    facts = analysis.facts
    if function.parent is not facts.module_scope or function.class_name is not None:
        return None
    body = function.node.body
    last = body.body[-1] if isinstance(body, cst.IndentedBlock) and body.body else None
    if not (isinstance(last, cst.SimpleStatementLine) and isinstance(last.body[-1], cst.Return)):
        return None
    if function in _self_calling(analysis):
        return None  # recursion
    shapes = set()
    elements = None
    for site in facts.return_sites:
        if site.scope is not function:
            continue
        if site.value is None:
            return None
        value = site.value
        elements = [e.value for e in value.elements] if isinstance(value, (cst.Tuple, cst.List)) else [value]
        shapes.add(tuple(analysis.code(element) for element in elements))
    return elements if len(shapes) == 1 else None


def propagate(analysis: Analysis) -> None:
    """Roles flow from source to target; through a plain alias (``a = b``) also back, as both name one object."""
    changed = True
    while changed:
        changed = False
        for target, source, alias, assignment in analysis.edges:
            pairs = ((source, target, assignment), (target, source, None)) if alias else ((source, target, assignment),)
            for origin, destination, creation in pairs:
                changed |= _flow(analysis, origin, destination, creation)


def _flow(analysis: Analysis, origin: Binding, destination: Binding, creation: Assignment | None) -> bool:
    changed = False
    if origin in analysis.candidates and destination not in analysis.candidates:
        analysis.candidates.add(destination)
        changed = True
    role = analysis.roles.get(origin)
    if role is not None and destination not in analysis.roles:
        analysis.roles[destination] = role
        analysis.origins[destination] = analysis.origins.get(origin, origin)
        if creation is not None:
            analysis.creations.setdefault(destination, creation)
        changed = True
    return changed


def connected(analysis: Analysis, binding: Binding, upstream: bool = False) -> set[Binding]:
    """Bindings the object held by ``binding`` flows into (through aliases, arguments and returns); with
    ``upstream``, the bindings whose objects flow into it instead. ``binding`` itself is included."""
    seen = {binding}
    frontier = [binding]
    while frontier:
        current = frontier.pop()
        for target, source, alias, _ in analysis.edges:
            for origin, destination in ((source, target), (target, source)) if alias else ((source, target),):
                start, reached = (destination, origin) if upstream else (origin, destination)
                if start == current and reached not in seen:
                    seen.add(reached)
                    frontier.append(reached)
    return seen


def handed_back(analysis: Analysis, reach: set[Binding], used_before: bool = False) -> set[Binding]:
    """The factories' bindings whose objects are returned only into ``reach`` (``model`` inside
    ``load_objects()`` when the caller's ``model`` is prepared), found through return values and aliases; with
    ``used_before`` False, not those the factory uses in a loop before returning them."""
    targets: dict[Binding, set[Binding]] = {}
    for target, source, alias, via in analysis.edges:
        if not alias and via is not None:
            targets.setdefault(source, set()).add(target)
    found: set[Binding] = set()
    followed: set[Binding] = set()
    changed = True
    while changed:
        changed = False
        for source, received in targets.items():
            if source not in followed and received <= reach | found:
                followed.add(source)
                group = {binding for binding in connected(analysis, source) if binding[0] is source[0]}
                if used_before or not _used_in_loops(analysis, source[0], group):
                    found |= group
                changed = True
    return found - reach


def _used_in_loops(analysis: Analysis, function: Scope, bindings: set[Binding]) -> bool:
    """True when a loop of ``function`` iterates one of ``bindings``, or a call inside one reads it (the factory uses
    the object before it returns it, e.g. warms a model up: it is not yet prepared there)."""
    roots = {key.split(".")[0] for _, key in bindings}
    for loop in analysis.facts.loops:
        iterated = loop.node.iter if loop.scope is function and isinstance(loop.node, cst.For) else None
        if iterated is not None and {name.value for name in _names_in(iterated)} & roots:
            return True
    for site in analysis.facts.calls:
        if site.scope is function and (site.loops or site.comprehensions):
            names = {load.value for load in _names_in(site.node)}
            if names & roots:
                return True
    return False


def _names_in(node: cst.CSTNode) -> list[cst.Name]:
    found: list[cst.Name] = []

    class _Names(Walker):
        def visit_Name(self, name: cst.Name) -> None:
            found.append(name)

    _Names().walk(node)
    return found


def find_backward_calls(analysis: Analysis) -> None:
    for site in analysis.facts.calls:
        func = site.node.func
        if not isinstance(func, cst.Attribute) or func.attr.value != "backward":
            continue
        receiver = func.value
        if analysis.qualify(receiver) is not None or analysis.role_of(site.scope, receiver) == ACCELERATOR:
            continue
        analysis.backward_calls.append(site)


def holds_model(analysis, scope, *nodes) -> bool:
    """A model, or a name assigned from one (``self.model = model.to(self.gpu_id)`` in a trainer's ``__init__``)."""
    if any(analysis.role_of(scope, node) == MODEL for node in nodes):
        return True
    keys = {analysis.binding(scope, key) for key in map(dotted_name, nodes) if key is not None}
    for assignment in analysis.facts.assignments:
        target = dotted_name(assignment.targets[0]) if len(assignment.targets) == 1 else None
        if target is None or analysis.binding(assignment.scope, target) not in keys:
            continue
        value = assignment.value
        while isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) and value.func.attr.value in ("to", "cuda"):
            value = value.func.value
        if analysis.role_of(assignment.scope, value) == MODEL:
            return True
    return False

