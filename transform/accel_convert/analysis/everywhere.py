"""Whether a statement runs on every process alike: what a collective (``accelerator.wait_for_everyone()``) needs.

A statement runs everywhere when nothing between it and its function's body can send one process another way: no
``while`` loop (its iteration count may differ), and every ``if`` around it tests only values every process holds
alike (the parsed command line, ``range`` loop counters, module constants, literals). ``if accelerator.is_main_process:``
and rank comparisons with 0 are the main process's own block; other tests (a metric, a rank other than 0) are unknown.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from accel_convert.analysis.facts import Location, Scope
from accel_convert.analysis.imports import dotted_name
from accel_convert.analysis.traverse import Walker

_RANK_NAMES = frozenset({"rank", "local_rank", "global_rank", "gpu", "gpu_id", "process_index", "local_process_index"})
_MAIN_FLAGS = frozenset({"is_main_process", "is_local_main_process"})
_RANK_CALLS = frozenset({"get_rank", "get_local_rank"})


@dataclass(frozen=True)
class Where:
    """``everywhere``: every process runs the statement; else ``main_only`` (the main process's block) or the
    statement (an ``if`` or ``while``) that may send processes different ways."""

    everywhere: bool
    main_only: bool = False
    branch: cst.CSTNode | None = None


def statement_order(facts) -> dict[int, int]:
    """id(statement) -> its rank in source order (facts records statements as it meets them)."""
    return {key: index for index, key in enumerate(facts.statement_locations)}


def enclosing(facts, scope: Scope, location: Location) -> list[cst.CSTNode]:
    """The compound statements of ``scope`` around the statement at ``location`` (outermost first), the statement
    itself excluded."""
    found = []
    for block, index in location[len(scope.location) : -1]:  # the entries from the scope's body block down
        if index >= 0:
            found.append(facts.statement_at(block, index))
    return found


def where(analysis, scope: Scope, location: Location, depth: int = 0) -> Where:
    """Where the statement at ``location`` in ``scope`` runs (see the module docstring), following the calls of
    the function it is in: a helper called only from the main process's block runs there only; one called from an
    unknown branch is unknown too."""
    inside = _where_in_scope(analysis, scope, location)
    if not inside.everywhere or scope.parent is None:
        return inside
    callers = callers_of(analysis, scope)
    if depth > 8:
        return Where(False, branch=None)
    places = [where(analysis, site.scope, site.location, depth + 1) for site in callers]
    if places and all(place.main_only for place in places):
        return places[0]
    return next((place for place in places if not place.everywhere), inside)


def callers_of(analysis, function: Scope) -> list:
    """The call sites of a function of the file (by its name) or of a method (``self.method(...)`` in its class)."""
    found = []
    for site in analysis.facts.calls:
        func = site.node.func
        if isinstance(func, cst.Name) and analysis.facts.functions.get(func.value) is function:
            found.append(site)
        elif (
            isinstance(func, cst.Attribute)
            and function.class_name is not None
            and site.scope.class_name == function.class_name
            and isinstance(func.value, cst.Name)
            and func.value.value == site.scope.self_name
            and func.attr.value == function.name
        ):
            found.append(site)
    return found


def _where_in_scope(analysis, scope: Scope, location: Location) -> Where:
    for statement in enclosing(analysis.facts, scope, location):
        if isinstance(statement, cst.While):
            return Where(False, branch=statement)
        if isinstance(statement, cst.If):
            if _main_only(statement.test):
                return Where(False, main_only=True, branch=statement)
            if not _uniform(analysis, scope, statement.test):
                return Where(False, branch=statement)
    return Where(True)


def _main_only(test: cst.BaseExpression) -> bool:
    """``x.is_main_process``, ``rank == 0``, ``dist.get_rank() == 0``, ``args.local_rank in (-1, 0)``."""
    if isinstance(test, cst.Attribute) and test.attr.value in _MAIN_FLAGS:
        return True
    if isinstance(test, cst.Name) and test.value in _MAIN_FLAGS:
        return True
    if isinstance(test, cst.BooleanOperation) and isinstance(test.operator, cst.And):
        return _main_only(test.left) or _main_only(test.right)
    if isinstance(test, cst.Comparison) and len(test.comparisons) == 1:
        target = test.comparisons[0]
        if isinstance(target.operator, cst.Equal) and _is_zero(target.comparator) and _names_rank(test.left):
            return True
        if isinstance(target.operator, cst.In) and _names_rank(test.left) and isinstance(target.comparator, (cst.Tuple, cst.List)):
            values = [element.value for element in target.comparator.elements]
            return any(_is_zero(value) for value in values) and all(_is_zero(v) or _is_minus_one(v) for v in values)
    return False


def _is_zero(node) -> bool:
    return isinstance(node, cst.Integer) and node.value == "0"


def _is_minus_one(node) -> bool:
    return (
        isinstance(node, cst.UnaryOperation)
        and isinstance(node.operator, cst.Minus)
        and isinstance(node.expression, cst.Integer)
        and node.expression.value == "1"
    )


def _names_rank(node) -> bool:
    if isinstance(node, cst.Call):
        func = node.func
        name = func.attr.value if isinstance(func, cst.Attribute) else func.value if isinstance(func, cst.Name) else None
        return name in _RANK_CALLS
    key = dotted_name(node)
    return key is not None and key.rsplit(".", 1)[-1] in _RANK_NAMES


def _uniform(analysis, scope: Scope, test: cst.BaseExpression) -> bool:
    """Every name ``test`` reads holds the same value on every process (see the module docstring)."""
    names = _Reads()
    names.walk(test)
    if names.calls:
        return False
    for key in names.keys:
        if key.rsplit(".", 1)[-1] in _RANK_NAMES | _MAIN_FLAGS:
            return False
        root = key.split(".")[0]
        if root in ("True", "False", "None", "__name__"):
            continue
        binding = analysis.binding(scope, root)
        if not (_parsed(analysis, binding) or _range_counter(analysis, binding) or _module_constant(analysis, binding)):
            return False
    return True


class _Reads(Walker):
    def __init__(self) -> None:
        self.keys: list[str] = []
        self.calls = False

    def visit_Call(self, node: cst.Call) -> bool:
        self.calls = True
        return False

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        key = dotted_name(node)
        if key is not None:
            self.keys.append(key)
            return False
        return True

    def visit_Name(self, node: cst.Name) -> None:
        self.keys.append(node.value)


def _assignments_of(analysis, binding):
    scope, key = binding
    return [
        a
        for a in analysis.facts.assignments
        if a.scope is scope and any(dotted_name(t) == key for t in a.targets)
    ]


def _parsed(analysis, binding) -> bool:
    """A variable bound once, to ``parser.parse_args()`` (or ``parse_known_args()[0]``-free forms)."""
    assignments = _assignments_of(analysis, binding)
    if len(assignments) != 1 or len(assignments[0].targets) != 1:
        return False
    value = assignments[0].value
    return isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) and value.func.attr.value == "parse_args"


def _range_counter(analysis, binding) -> bool:
    """The target of ``for name in range(...)`` whose arguments are themselves the same everywhere."""
    scope, key = binding
    loops = [loop for loop in analysis.facts.loops if loop.scope is scope and key in loop.target_names]
    if len(loops) != 1 or _assignments_of(analysis, binding):
        return False
    loop = loops[0].node
    if not isinstance(loop, cst.For) or not isinstance(loop.target, cst.Name):
        return False
    iterable = loop.iter
    if not (isinstance(iterable, cst.Call) and isinstance(iterable.func, cst.Name) and iterable.func.value == "range"):
        return False
    reads = _Reads()
    for arg in iterable.args:
        reads.walk(arg.value)
    if reads.calls:
        return False
    return all(
        _parsed(analysis, analysis.binding(scope, k.split(".")[0])) or _module_constant(analysis, analysis.binding(scope, k.split(".")[0]))
        for k in reads.keys
    )


def _module_constant(analysis, binding) -> bool:
    """A module-level name bound once, to a literal."""
    scope, key = binding
    if scope is not analysis.facts.module_scope:
        return False
    assignments = _assignments_of(analysis, binding)
    if len(assignments) != 1:
        return False
    value = assignments[0].value
    named = isinstance(value, cst.Name) and value.value in ("True", "False", "None")
    return named or isinstance(value, (cst.Integer, cst.Float, cst.SimpleString))
