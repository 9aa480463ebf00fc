"""Where the accelerator lives and how each scope reaches it.

The training run is owned by the scope that creates the (first) optimizer. The accelerator is created there, or at
module level when the script defines its device at module level (so every function sees it), or as
``self.accelerator`` when the owner is a method. A scope that needs it (for ``accelerator.backward``, ...) and
cannot see it gets it handed in:

- a helper function gets an ``accelerator`` parameter, passed at every call site in the file;
- a class of the file whose methods need it (a ``Trainer(model, loader, optimizer)`` built where the objects are
  prepared) gets an ``accelerator`` parameter on ``__init__``, stored first thing as ``self.accelerator``, passed
  as ``accelerator=...`` at every construction; its methods use ``self.accelerator``. The objects reach such a
  class through its parameters, also through ``**kwargs`` (``Trainer(model=model)`` read as ``kwargs["model"]``),
  and its methods are followed where they are called on the name the construction is bound to
  (``trainer = Trainer(...)``, then ``trainer.train(loader)``).

The parameter is keyword-only when the signature has defaults, ``*args`` or keyword-only parameters. Each caller
(or constructor) must reach the accelerator itself, possibly by the same means. When one cannot, or the class is
used otherwise than by constructing it (subclassed, passed around, built by a classmethod, decorated), the helper
or class is left alone and the rules report what they could not convert.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from accel_convert.analysis.facts import CallSite, Scope
from accel_convert.analysis.roles import Analysis, called_function
from accel_convert.analysis.traverse import Walker

NAME = "accelerator"
_NOT_ON_INSTANCES = frozenset({"staticmethod", "classmethod"})


@dataclass(eq=False)
class Access:
    home: Scope  # where ``accelerator = Accelerator(...)`` goes
    owner: Scope  # where the objects of the run are prepared
    attribute: bool  # home is a method: the accelerator is ``self.accelerator``
    passed: dict[Scope, bool] = field(default_factory=dict)  # helper -> its new parameter is keyword-only
    classes: dict[str, bool] = field(default_factory=dict)  # class -> its ``__init__``'s new parameter is keyword-only
    call_sites: list[tuple[CallSite, bool]] = field(default_factory=list)  # (call or construction, pass by keyword)
    position: tuple[int, int] = (0, 0)  # (block, statement index) in home before which the accelerator is created
    start: tuple[int, ...] = ()  # the path in home after which the accelerator surely exists (run's first object)

    def _direct(self, scope: Scope) -> str | None:
        if self.home.parent is None:  # module level: seen by the functions of its own file only
            return NAME if scope.file == self.home.file else None
        if self.attribute:
            if scope.class_name == self.home.class_name and scope.self_name:
                return f"{scope.self_name}.{NAME}"
            return None
        return NAME if scope.sees(self.home) else None

    def expression(self, scope: Scope) -> str | None:
        """The code that names the accelerator in ``scope``, or None when it cannot reach it."""
        direct = self._direct(scope)
        if direct is not None:
            return direct
        if any(scope.sees(helper) for helper in self.passed):
            return NAME
        method = _enclosing_method(scope)
        if method is not None and method.class_name in self.classes and _on_instances(method):
            return f"{method.self_name}.{NAME}"
        return None

    def reachable(self, scope: Scope, location) -> str | None:
        """The accelerator's expression where code at ``location`` in ``scope`` surely runs after its creation."""
        accelerator = self.expression(scope)
        if accelerator is None:
            return None
        if scope is self.home:
            return accelerator if path(location) > self.start else None
        if self.attribute and self.home.name != "__init__":
            return None  # another method may run before the accelerator attribute is set
        return accelerator

    def initializers(self, analysis: Analysis) -> list[Scope]:
        """The ``__init__`` of each class that receives the accelerator."""
        return [analysis.facts.classes[name].methods["__init__"] for name in self.classes]


def path(location) -> tuple[int, ...]:
    """The statement indices of a location, comparable in source order within one scope."""
    return tuple(index for _, index in location)


def _decorated(method: Scope, name: str) -> bool:
    return any(isinstance(d.decorator, cst.Name) and d.decorator.value == name for d in method.node.decorators)


def _on_instances(method: Scope) -> bool:
    """A method called on instances (``self`` first), not a static or class method."""
    return method.self_name is not None and not any(_decorated(method, name) for name in _NOT_ON_INSTANCES)


def _enclosing_method(scope: Scope) -> Scope | None:
    """The method that ``scope`` is or is nested in (a closure reading its ``self``), or None."""
    current = scope
    while current is not None and current.class_name is None:
        current = current.parent
    if current is None or current.self_name is None:
        return None
    inner = scope
    while inner is not current:
        if current.self_name in inner.params or current.self_name in inner.assigned:
            return None
        inner = inner.parent
    return current


def _home(analysis: Analysis, owner: Scope) -> tuple[Scope, bool]:
    module = analysis.facts.module_scope
    if owner is not module:
        module_level = [d for d in analysis.device_definitions if d.scope is module]
        module_level += [f for f in analysis.flags if f.assignment.scope is module]
        if module_level:
            return module, False
    return owner, owner.class_name is not None and owner.self_name is not None


class _ClassUses(Walker):
    """Counts the definitions of a class name and its uses other than calls, annotations and ``super(C, self)``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.definitions: list[cst.ClassDef] = []
        self.other_uses = 0
        self.allowed: set[int] = set()
        self.annotation_depth = 0

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        if node.name.value == self.name:
            self.definitions.append(node)
            self.allowed.add(id(node.name))

    def visit_Call(self, node: cst.Call) -> None:
        if isinstance(node.func, cst.Name):
            self.allowed.add(id(node.func))
            if node.func.value == "super" and node.args:
                self.allowed.add(id(node.args[0].value))

    def visit_Annotation(self, node: cst.Annotation) -> None:
        self.annotation_depth += 1

    def leave_Annotation(self, original_node: cst.Annotation) -> None:
        self.annotation_depth -= 1

    def visit_Name(self, node: cst.Name) -> None:
        if node.value == self.name and id(node) not in self.allowed and not self.annotation_depth:
            self.other_uses += 1

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        self.walk(node.value)
        return False  # ``x.Trainer`` is another name


def _constructions(analysis: Analysis, name: str) -> list[CallSite] | None:
    """The calls that build class ``name``, when the class can take the accelerator: defined once at module level,
    not decorated, with an ``__init__`` of its own (an indented block) and no ``__new__`` or classmethod, and its
    name used only to construct it (or in annotations and ``super(C, self)``). Else None."""
    facts = analysis.facts
    info = facts.classes.get(name)
    if info is None or not any(statement is info.node for statement in facts.module.body) or info.node.decorators:
        return None
    init = info.methods.get("__init__")
    if init is None or not _on_instances(init) or NAME in init.params or not isinstance(init.node.body, cst.IndentedBlock):
        return None
    if "__new__" in info.methods or any(_decorated(method, "classmethod") for method in info.methods.values()):
        return None
    uses = _ClassUses(name)
    uses.walk(facts.module)
    if len(uses.definitions) != 1 or uses.other_uses:
        return None
    sites = [
        site
        for site in facts.calls
        if isinstance(site.node.func, cst.Name)
        and site.node.func.value == name
        and analysis.binding(site.scope, name)[0] is facts.module_scope
    ]
    return sites or None


def _keyword_only(params: cst.Parameters) -> bool:
    return bool(
        params.kwonly_params
        or isinstance(params.star_arg, (cst.Param, cst.ParamStar))
        or params.star_kwarg is not None
        or any(param.default is not None for param in params.params)
    )


def locate(analysis: Analysis, owner: Scope, needs) -> Access:
    """Decide where the accelerator lives and which helpers and classes get it passed in, for the scopes in ``needs``
    (``position`` is set by the decision stage once the uses are known)."""
    home, attribute = _home(analysis, owner)
    if attribute and home.name != "__init__":
        # ``__init__`` runs before any other method: when it needs the accelerator (a device it defines), it
        # creates it, and the method owning the run reads ``self.accelerator`` like the others
        init = analysis.facts.classes[home.class_name].methods.get("__init__")
        if init is not None and init.self_name is not None and any(scope is init for scope in needs):
            home = init
    access = Access(home, owner, attribute)
    starts = [d.location for d in analysis.device_definitions if d.scope is home]
    if analysis.anchor.scope is home:
        starts.append(analysis.anchor.location)
    access.start = min((path(location) for location in starts), default=(1 << 30,))
    callers: dict[Scope | str, list[CallSite] | None] = {}  # helper or class name -> its calls or constructions
    for site in analysis.facts.calls:
        callee = called_function(analysis, site)
        if callee is not None and callee[1] == 0:
            callers.setdefault(callee[0], []).append(site)

    def receiver(scope: Scope) -> Scope | str | None:
        """What would take the accelerator for ``scope``: the helper itself or the class of the method."""
        method = _enclosing_method(scope)
        if method is None:
            return scope if scope.parent is not None else None
        if not _on_instances(method):
            return None
        if method.class_name not in callers:
            callers[method.class_name] = _constructions(analysis, method.class_name)
        return method.class_name

    candidates: set[Scope | str] = set()
    rejected: set[Scope | str] = set()
    work = [scope for scope in needs if access.expression(scope) is None]
    while work:
        unit = receiver(work.pop())
        if unit is None or unit in candidates or unit in rejected:
            continue
        if not callers.get(unit):
            rejected.add(unit)
            continue
        candidates.add(unit)
        work.extend(site.scope for site in callers[unit] if access._direct(site.scope) is None)
    changed = True
    while changed:
        changed = False
        for unit in candidates - rejected:
            for site in callers[unit]:
                if access._direct(site.scope) is not None:
                    continue
                caller = receiver(site.scope)
                if caller is None or caller in rejected or caller not in candidates:
                    rejected.add(unit)
                    changed = True
                    break
    for unit in candidates - rejected:
        if isinstance(unit, str):
            access.classes[unit] = _keyword_only(analysis.facts.classes[unit].methods["__init__"].node.params)
            access.call_sites.extend((site, True) for site in callers[unit])
            continue
        keyword_only = _keyword_only(unit.node.params)
        access.passed[unit] = keyword_only
        for site in callers[unit]:
            by_keyword = keyword_only or any(arg.keyword is not None or arg.star for arg in site.node.args)
            access.call_sites.append((site, by_keyword))
    return access
