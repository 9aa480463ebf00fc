"""What the statements after an evaluation loop's forward pass do with the batch: add up metrics, or something else.

A *metric* statement adds to something that outlives the loop: ``total += ...`` (or ``total = total + ...``) on a
name the loop does not otherwise bind, or ``results.append(...)`` / ``.extend`` / ``.update`` / ``.add_batch`` on
one. Its *feeders* are the statements whose results it reads (``loss = criterion(out, y)``, ``for j in ...:``
around it), found backwards to a fixed point. Everything else after the forward pass (saving an image, a reshape to the loader's batch size) is *local*:
it works on this process's batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from accel_convert.analysis.expressions import root_name
from accel_convert.analysis.facts import target_names
from accel_convert.analysis.traverse import Walker

ACCUMULATING_METHODS = frozenset({"append", "extend", "update", "add_batch"})
_ASSIGN, _HEADER, _METRIC, _OTHER = "assign", "header", "metric", "other"


@dataclass(eq=False)
class Unit:
    """A small statement, or the header of a compound statement (``for j in ...:``, ``if i == 0:``)."""

    node: cst.CSTNode
    statement: cst.CSTNode  # the statement holding the unit's expressions (for plan.expression)
    kind: str
    expressions: list[cst.CSTNode] = field(default_factory=list)  # what the unit evaluates (a header: not its body)
    binds: set[str] = field(default_factory=set)
    inner: list[Unit] = field(default_factory=list)  # units nested under a header
    skip: cst.CSTNode | None = None  # an inline model call: what it reads is the forward pass's, not the unit's
    output: str | None = None  # the name that the inline model call in this unit stands for

    @property
    def reads(self) -> list[cst.Name]:
        return names_read(*self.expressions, skip=self.skip)

    def read_names(self) -> set[str]:
        names = {name.value for name in self.reads}
        return names | {self.output} if self.output else names


@dataclass
class MetricFlow:
    metric: list[Unit]  # metric statements and their feeders, in source order
    local: list[Unit]  # the other units after the forward pass

    @property
    def accumulates(self) -> bool:
        return any(unit.kind == _METRIC for unit in self.metric)

    def metric_reads(self) -> set[str]:
        return set().union(*(unit.read_names() for unit in self.metric))

    def local_reads(self) -> set[str]:
        return set().union(*(unit.read_names() for unit in self.local))

    def feeder_binds(self) -> set[str]:
        return set().union(*(unit.binds for unit in self.metric))

    def first_local_reading(self, names: set[str]) -> Unit:
        return next(unit for unit in self.local if unit.read_names() & names)


def metric_flow(
    loop: cst.For | cst.While, forward: cst.CSTNode, inline: cst.Call | None = None, output: str | None = None
) -> MetricFlow:
    """Split the statements after ``forward`` in ``loop``'s body into metric computation and local uses.

    ``inline``: the model call, when ``forward`` uses it inline; the call becomes ``output``, a name assigned just
    before ``forward``, so ``forward`` itself counts as after the forward pass and reads ``output``."""
    bound = _loop_bound(loop)
    collector = _Units(bound, forward, inline, output)
    collector.block(loop.body)
    units = collector.after
    flat = [unit for top in units for unit in _flatten(top)]
    metric = {id(unit) for unit in flat if unit.kind == _METRIC}
    needed = set().union(*(unit.read_names() for unit in flat if id(unit) in metric))
    changed = True
    while changed:
        changed = False
        for unit in flat:
            if id(unit) in metric:
                continue
            feeds = unit.kind in (_ASSIGN, _HEADER) and bool(unit.binds & needed)
            guards = unit.kind == _HEADER and any(id(inner) in metric for inner in _flatten(unit)[1:])
            if feeds or guards:
                metric.add(id(unit))
                needed |= unit.read_names()
                changed = True
    return MetricFlow([u for u in flat if id(u) in metric], [u for u in flat if id(u) not in metric])


def _flatten(unit: Unit) -> list[Unit]:
    return [unit, *(inner for child in unit.inner for inner in _flatten(child))]


def _loop_bound(loop: cst.For | cst.While) -> set[str]:
    """Names the loop binds per iteration: its target and every plain assignment, ``for`` or ``with`` in its body."""
    bound = set(target_names(loop.target)) if isinstance(loop, cst.For) else set()

    class _Binds(Walker):
        def visit_Assign(self, node: cst.Assign) -> None:
            if _accumulated(node) is None:
                for target in node.targets:
                    bound.update(target_names(target.target))

        def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
            bound.update(target_names(node.target))

        def visit_For(self, node: cst.For) -> None:
            bound.update(target_names(node.target))

        def visit_AsName(self, node: cst.AsName) -> None:
            bound.update(target_names(node.name))

        def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
            return False

    _Binds().walk(loop.body)
    return bound


class _Units:
    """Collects the units of a loop body in source order, keeping those after the forward statement."""

    def __init__(self, bound: set[str], forward: cst.CSTNode, inline: cst.Call | None, output: str | None) -> None:
        self.bound = bound
        self.forward = forward
        self.inline = inline
        self.output = output
        self.seen_forward = False
        self.after: list[Unit] = []

    def block(self, suite: cst.BaseSuite, into: list[Unit] | None = None, owner: cst.CSTNode | None = None) -> None:
        into = self.after if into is None else into
        if isinstance(suite, cst.SimpleStatementSuite):  # ``if i == 0: save(x)`` on one line
            if self.seen_forward:
                into.extend(self._small(small, owner) for small in suite.body)
            return
        for statement in suite.body:
            self.statement(statement, into)

    def statement(self, statement: cst.CSTNode, into: list[Unit]) -> None:
        if statement is self.forward:
            self.seen_forward = True
            if self.inline is None:
                return
        if isinstance(statement, cst.SimpleStatementLine):
            if self.seen_forward:
                into.extend(self._small(small, statement) for small in statement.body)
            return
        header = _header(statement)
        header_after = self.seen_forward
        for suite in _suites(statement):
            self.block(suite, header.inner, statement)
        if header_after:
            into.append(header)
        else:  # the forward pass is inside this statement: what follows it there comes after it
            into.extend(header.inner)

    def _small(self, small: cst.BaseSmallStatement, line: cst.CSTNode) -> Unit:
        unit = self._classify(small, line)
        if self.inline is not None and line is self.forward and _contains(small, self.inline):
            unit.skip, unit.output = self.inline, self.output
        return unit

    def _classify(self, small: cst.BaseSmallStatement, line: cst.CSTNode) -> Unit:
        total = _accumulated(small) if isinstance(small, cst.Assign) else None
        if total is not None and total not in self.bound:  # ``total = total + loss.item()``
            return Unit(small, line, _METRIC, [small.value])
        if isinstance(small, (cst.Assign, cst.AnnAssign)):
            targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
            plain = [n for t in targets for n in target_names(t)]
            stores = [t for t in targets if not isinstance(t, (cst.Name, cst.Tuple, cst.List))]
            value = [small.value] if small.value is not None else []
            return Unit(small, line, _ASSIGN if plain else _OTHER, [*value, *stores], set(plain))
        if isinstance(small, cst.AugAssign):
            root = root_name(small.target)
            if isinstance(small.target, cst.Name) and root in self.bound:
                return Unit(small, line, _ASSIGN, [small.value, small.target], {root})
            kind = _METRIC if root is not None and root not in self.bound else _OTHER
            return Unit(small, line, kind, [small.value, small.target])
        if isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
            func = small.value.func
            if isinstance(func, cst.Attribute) and func.attr.value in ACCUMULATING_METHODS:
                root = root_name(func.value)
                if root is not None and root not in self.bound:
                    return Unit(small, line, _METRIC, [small.value])
        return Unit(small, line, _OTHER, [small])


def _accumulated(assign: cst.Assign) -> str | None:
    """``total = total + x``: the one name an assignment binds from its own value, else None."""
    if len(assign.targets) == 1 and isinstance(assign.targets[0].target, cst.Name):
        name = assign.targets[0].target.value
        if name in {read.value for read in names_read(assign.value)}:
            return name
    return None


def _contains(node: cst.CSTNode, part: cst.CSTNode) -> bool:
    found = False

    class _Find(Walker):
        def visit_Call(self, call: cst.Call) -> bool:
            nonlocal found
            found = found or call is part
            return not found

    _Find().walk(node)
    return found


def _header(statement: cst.CSTNode) -> Unit:
    parts: list[cst.CSTNode] = []
    binds: set[str] = set()
    if isinstance(statement, (cst.If, cst.While)):
        parts = [statement.test]
        orelse = statement.orelse
        while isinstance(orelse, cst.If):  # elif
            parts.append(orelse.test)
            orelse = orelse.orelse
    elif isinstance(statement, cst.For):
        parts, binds = [statement.iter], set(target_names(statement.target))
    elif isinstance(statement, cst.With):
        parts = [item.item for item in statement.items]
        binds = {n for item in statement.items if item.asname for n in target_names(item.asname.name)}
    return Unit(statement, statement, _HEADER, parts, binds)


def _suites(statement: cst.CSTNode) -> list[cst.BaseSuite]:
    """The blocks a compound statement holds: body, elif and else bodies, handlers, finally."""
    if isinstance(statement, (cst.FunctionDef, cst.ClassDef)):
        return []
    suites = [statement.body] if isinstance(getattr(statement, "body", None), cst.BaseSuite) else []
    orelse = getattr(statement, "orelse", None)
    while orelse is not None:
        suites.append(orelse.body)
        orelse = orelse.orelse if isinstance(orelse, cst.If) else None
    suites += [handler.body for handler in getattr(statement, "handlers", ())]
    final = getattr(statement, "finalbody", None)
    if final is not None:
        suites.append(final.body)
    return suites


def names_read(*nodes: cst.CSTNode, skip: cst.CSTNode | None = None) -> list[cst.Name]:
    """The variable names the expressions read (not attribute names, keywords, a lambda's own parameters, or
    anything inside ``skip``)."""
    found: list[cst.Name] = []

    class _Reads(Walker):
        def visit_Call(self, node: cst.Call) -> bool:
            return node is not skip

        def visit_Name(self, node: cst.Name) -> None:
            found.append(node)

        def visit_Attribute(self, node: cst.Attribute) -> bool:
            self.walk(node.value)
            return False

        def visit_Lambda(self, node: cst.Lambda) -> bool:
            self.walk(node.body)
            return False

    for node in nodes:
        _Reads().walk(node)
    return found
