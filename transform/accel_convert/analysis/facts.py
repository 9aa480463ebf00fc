"""One read-only pass over a module that records the facts the analysis reasons about.

Scopes (module, functions, methods), assignments, ``for`` loops, calls, name loads and returns, each with its
*location*: the chain of ``(block, index)`` pairs from the module body down to the statement that holds it. Locations
let the planner put a new statement before or after any statement and find the block that encloses several.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from accel_convert.analysis.traverse import Walker
from accel_convert.project.markers import file_number

Location = tuple[tuple[int, int], ...]  # ((id(block), index in block.body), ...), outermost first


@dataclass(eq=False)
class Scope:
    node: cst.CSTNode
    name: str
    parent: Scope | None
    class_name: str | None = None  # set for methods
    params: list[str] = field(default_factory=list)
    assigned: set[str] = field(default_factory=set)  # root names bound in this scope
    location: Location = ()  # of the def statement
    body_block: int = 0  # id of the block holding the scope's statements
    file: int = 0  # in a joined project source, the number of the file defining the scope (0: the entry)

    @property
    def self_name(self) -> str | None:
        return self.params[0] if self.class_name and self.params else None

    def sees(self, other: Scope) -> bool:
        """True when ``other`` is this scope or encloses it."""
        scope = self
        while scope is not None:
            if scope is other:
                return True
            scope = scope.parent
        return False


@dataclass(eq=False)
class Loop:
    node: cst.For | cst.While
    scope: Scope
    location: Location
    outer: tuple[Loop, ...]
    target_names: list[str]


@dataclass(eq=False)
class Assignment:
    scope: Scope
    targets: list[cst.BaseExpression]  # flattened when the target is one tuple/list
    value: cst.BaseExpression
    node: cst.Assign | cst.AnnAssign
    statement: cst.SimpleStatementLine
    location: Location
    loops: tuple[Loop, ...]


@dataclass(eq=False)
class CallSite:
    node: cst.Call
    scope: Scope
    location: Location
    loops: tuple[Loop, ...]
    comprehensions: tuple[tuple[list[str], cst.BaseExpression], ...]  # (target names, iterable), innermost last
    statement: cst.CSTNode | None  # the innermost statement (simple line or compound) holding the call


@dataclass(eq=False)
class NameLoad:
    name: str
    scope: Scope
    location: Location


@dataclass(eq=False)
class AttributeRead:
    """``name.attr`` or ``self.name.attr`` read (not assigned) somewhere."""

    node: cst.Attribute
    scope: Scope
    location: Location
    statement: cst.CSTNode | None


@dataclass(eq=False)
class ReturnSite:
    """A ``return`` statement (``value`` None for a bare ``return``)."""

    scope: Scope
    value: cst.BaseExpression | None
    statement: cst.CSTNode | None
    location: Location


@dataclass(eq=False)
class ClassInfo:
    node: cst.ClassDef
    bases: list[cst.BaseExpression]
    methods: dict[str, Scope] = field(default_factory=dict)


@dataclass(eq=False)
class Facts:
    module: cst.Module
    module_scope: Scope
    scopes: list[Scope] = field(default_factory=list)
    functions: dict[str, Scope] = field(default_factory=dict)  # module-level (and nested) functions by name
    classes: dict[str, ClassInfo] = field(default_factory=dict)
    assignments: list[Assignment] = field(default_factory=list)
    loops: list[Loop] = field(default_factory=list)
    calls: list[CallSite] = field(default_factory=list)
    loads: list[NameLoad] = field(default_factory=list)
    attribute_reads: list[AttributeRead] = field(default_factory=list)
    returns: dict[Scope, list[cst.BaseExpression]] = field(default_factory=dict)
    return_sites: list[ReturnSite] = field(default_factory=list)  # every return, bare ones included
    blocks: dict[int, cst.CSTNode] = field(default_factory=dict)  # id -> Module or IndentedBlock
    if_statements: list[tuple[cst.If, Scope, Location]] = field(default_factory=list)
    statement_locations: dict[int, Location] = field(default_factory=dict)
    # indexes (ruff's semantic model): calls by method name (``x.step()``) and by plain callee name (``print(...)``),
    # loads by name; built once on first use, in source order
    _by_method: dict[str, list[CallSite]] | None = None
    _by_callee: dict[str, list[CallSite]] | None = None
    _loads_by_name: dict[str, list[NameLoad]] | None = None

    def statement_at(self, block_id: int, index: int) -> cst.CSTNode:
        return self.blocks[block_id].body[index]

    def method_calls(self, *methods: str) -> list[CallSite]:
        """Calls ``<anything>.<method>(...)`` for any of ``methods``, in source order."""
        if self._by_method is None:
            self._index_calls()
        if len(methods) == 1:
            return self._by_method.get(methods[0], [])
        found = {id(site): site for method in methods for site in self._by_method.get(method, ())}
        return [site for site in self.calls if id(site) in found] if found else []

    def calls_of(self, name: str) -> list[CallSite]:
        """Calls of the plain name ``name`` (``print(...)``, ``DataLoader(...)``), in source order."""
        if self._by_callee is None:
            self._index_calls()
        return self._by_callee.get(name, [])

    def loads_of(self, names) -> list[NameLoad]:
        """Loads of any of ``names`` (an iterable of strings), in source order."""
        if self._loads_by_name is None:
            index: dict[str, list[NameLoad]] = {}
            for load in self.loads:
                index.setdefault(load.name, []).append(load)
            self._loads_by_name = index
        names = list(names)
        if len(names) == 1:
            return self._loads_by_name.get(names[0], [])
        found = {id(load) for name in names for load in self._loads_by_name.get(name, ())}
        return [load for load in self.loads if id(load) in found] if found else []

    def _index_calls(self) -> None:
        by_method: dict[str, list[CallSite]] = {}
        by_callee: dict[str, list[CallSite]] = {}
        for site in self.calls:
            func = site.node.func
            if isinstance(func, cst.Attribute):
                by_method.setdefault(func.attr.value, []).append(site)
            elif isinstance(func, cst.Name):
                by_callee.setdefault(func.value, []).append(site)
        self._by_method, self._by_callee = by_method, by_callee


def target_names(node: cst.BaseExpression) -> list[str]:
    """Plain names bound by an assignment or loop target (recursing into tuples and lists)."""
    if isinstance(node, cst.Name):
        return [node.value]
    if isinstance(node, (cst.Tuple, cst.List)):
        return [name for element in node.elements for name in target_names(element.value)]
    if isinstance(node, cst.StarredElement):
        return target_names(node.value)
    return []


def _flatten_target(node: cst.BaseExpression) -> list[cst.BaseExpression]:
    if isinstance(node, (cst.Tuple, cst.List)):
        return [element.value for element in node.elements]
    return [node]


_STATEMENTS = (cst.SimpleStatementLine, cst.BaseCompoundStatement)


def _is_string_statement(node: cst.CSTNode) -> bool:
    return (
        isinstance(node, cst.SimpleStatementLine)
        and len(node.body) == 1
        and isinstance(node.body[0], cst.Expr)
        and isinstance(node.body[0].value, cst.SimpleString)
    )


class _Collector(Walker):
    def __init__(self, module: cst.Module) -> None:
        self.scope = Scope(node=module, name="<module>", parent=None, body_block=id(module))
        self.facts = Facts(module=module, module_scope=self.scope, scopes=[self.scope])
        self.facts.blocks[id(module)] = module
        self.class_stack: list[ClassInfo] = []
        self.blocks: list[tuple[int, dict[int, int]]] = []
        self.location: Location = ()
        self.loops: tuple[Loop, ...] = ()
        self.comprehensions: tuple[tuple[list[str], cst.BaseExpression], ...] = ()
        self.statements: list[cst.CSTNode] = []
        self.assigned_attributes: set[int] = set()
        self.file = 0

    # blocks and locations -------------------------------------------------------------------------------------------
    def _enter_block(self, node) -> None:
        self.facts.blocks[id(node)] = node
        self.blocks.append((id(node), {id(statement): i for i, statement in enumerate(node.body)}))
        self.location = self.location + ((id(node), -1),)

    def _leave_block(self) -> None:
        self.blocks.pop()
        self.location = self.location[:-1]

    def visit_Module(self, node: cst.Module) -> None:
        self._enter_block(node)

    def visit_IndentedBlock(self, node: cst.IndentedBlock) -> None:
        self._enter_block(node)

    def leave_IndentedBlock(self, original_node: cst.IndentedBlock) -> None:
        self._leave_block()

    def walk(self, node: cst.CSTNode) -> None:
        if not isinstance(node, _STATEMENTS):
            super().walk(node)
            return
        if self.blocks:
            block_id, indices = self.blocks[-1]
            index = indices.get(id(node))
            if index is not None:
                self.location = self.location[:-1] + ((block_id, index),)
            if len(self.blocks) == 1 and _is_string_statement(node):
                number = file_number(self.facts.module.code_for_node(node).strip())
                self.file = self.file if number is None else number
        self.facts.statement_locations[id(node)] = self.location
        self.statements.append(node)
        super().walk(node)
        self.statements.pop()

    # scopes ---------------------------------------------------------------------------------------------------------
    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        info = ClassInfo(node=node, bases=[arg.value for arg in node.bases])
        self.facts.classes[node.name.value] = info
        self.scope.assigned.add(node.name.value)
        self.class_stack.append(info)

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self.class_stack.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        in_class = bool(self.class_stack) and self._directly_in_class(node)
        params = [p.name.value for p in (*node.params.posonly_params, *node.params.params)]
        if isinstance(node.params.star_arg, cst.Param):
            params.append(node.params.star_arg.name.value)
        params += [p.name.value for p in node.params.kwonly_params]
        if node.params.star_kwarg is not None:
            params.append(node.params.star_kwarg.name.value)
        self.scope.assigned.add(node.name.value)
        scope = Scope(
            node=node,
            name=node.name.value,
            parent=self.scope,
            class_name=self.class_stack[-1].node.name.value if in_class else None,
            params=params,
            location=self.location,
            body_block=id(node.body),
            file=self.file,
        )
        if in_class:
            self.class_stack[-1].methods[node.name.value] = scope
        else:
            self.facts.functions.setdefault(node.name.value, scope)
        self.facts.scopes.append(scope)
        self.scope = scope
        self._saved_loops = getattr(self, "_saved_loops", [])
        self._saved_loops.append(self.loops)
        self.loops = ()

    def _directly_in_class(self, node: cst.FunctionDef) -> bool:
        body = self.class_stack[-1].node.body
        return isinstance(body, cst.IndentedBlock) and any(statement is node for statement in body.body)

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self.scope = self.scope.parent
        self.loops = self._saved_loops.pop()

    # facts ----------------------------------------------------------------------------------------------------------
    def _record_assignment(self, node, targets: list[cst.BaseExpression], value) -> None:
        self.assigned_attributes.update(id(target) for target in targets if isinstance(target, cst.Attribute))
        for target in targets:
            for name in target_names(target):
                self.scope.assigned.add(name)
        self.facts.assignments.append(
            Assignment(self.scope, targets, value, node, self.statements[-1], self.location, self.loops)
        )

    def visit_Assign(self, node: cst.Assign) -> None:
        if len(node.targets) == 1:
            self._record_assignment(node, _flatten_target(node.targets[0].target), node.value)
        else:
            for target in node.targets:
                for name in target_names(target.target):
                    self.scope.assigned.add(name)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._record_assignment(node, [node.target], node.value)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self.assigned_attributes.add(id(node.target))
        for name in target_names(node.target):
            self.scope.assigned.add(name)

    def visit_For(self, node: cst.For) -> None:
        names = target_names(node.target)
        self.scope.assigned.update(names)
        loop = Loop(node, self.scope, self.location, self.loops, names)
        self.facts.loops.append(loop)
        self.loops = self.loops + (loop,)

    def leave_For(self, original_node: cst.For) -> None:
        self.loops = self.loops[:-1]

    def visit_While(self, node: cst.While) -> None:
        loop = Loop(node, self.scope, self.location, self.loops, [])
        self.facts.loops.append(loop)
        self.loops = self.loops + (loop,)

    leave_While = leave_For

    def visit_If(self, node: cst.If) -> None:
        self.facts.if_statements.append((node, self.scope, self.location))

    def visit_Call(self, node: cst.Call) -> None:
        statement = self.statements[-1] if self.statements else None
        self.facts.calls.append(CallSite(node, self.scope, self.location, self.loops, self.comprehensions, statement))

    def visit_Name(self, node: cst.Name) -> None:
        self.facts.loads.append(NameLoad(node.value, self.scope, self.location))

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        value = node.value
        simple = isinstance(value, cst.Name) or (isinstance(value, cst.Attribute) and isinstance(value.value, cst.Name))
        if simple and id(node) not in self.assigned_attributes:
            statement = self.statements[-1] if self.statements else None
            self.facts.attribute_reads.append(AttributeRead(node, self.scope, self.location, statement))
        self.walk(value)
        return False  # the attribute name is not a variable

    def visit_Return(self, node: cst.Return) -> None:
        statement = self.statements[-1] if self.statements else None
        self.facts.return_sites.append(ReturnSite(self.scope, node.value, statement, self.location))
        if node.value is not None:
            self.facts.returns.setdefault(self.scope, []).append(node.value)

    def visit_Import(self, node: cst.Import) -> bool:
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        return False

    def _enter_comprehension(self, node) -> None:
        entries = []
        for_in = node.for_in
        while for_in is not None:
            entries.append((target_names(for_in.target), for_in.iter))
            for_in = for_in.inner_for_in
        self.comprehensions = self.comprehensions + tuple(entries)

    def _leave_comprehension(self, node) -> None:
        depth = 0
        for_in = node.for_in
        while for_in is not None:
            depth += 1
            for_in = for_in.inner_for_in
        self.comprehensions = self.comprehensions[:-depth]

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _enter_comprehension

    def leave_ListComp(self, original_node) -> None:
        self._leave_comprehension(original_node)

    leave_SetComp = leave_DictComp = leave_GeneratorExp = leave_ListComp


def collect(module: cst.Module) -> Facts:
    collector = _Collector(module)
    collector.walk(module)
    return collector.facts
