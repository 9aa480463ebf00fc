"""Devices, availability flags and device moves: ``device = torch.device(...)`` definitions (and if/else chains of
them), ``--device`` options, ``use_cuda = torch.cuda.is_available()`` flags, and each ``.to(device)`` / ``.cuda()``
call classified as a move of a model, of a batch, or of something else."""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from accel_convert.analysis import symbols
from accel_convert.analysis.device_defaults import device_defaults
from accel_convert.analysis.expressions import is_cpu_literal, is_device_literal, is_string, is_string_device
from accel_convert.analysis.facts import Assignment, CallSite, Scope
from accel_convert.analysis.imports import dotted_name
from accel_convert.analysis.loops import batch_loaders
from accel_convert.analysis.roles import DEVICE, MODEL, Analysis, Binding, factory_returns, propagate, set_role
from accel_convert.analysis.traverse import Walker


@dataclass(eq=False)
class DeviceDefinition:
    """``device = torch.device(...)``-like statement (or if/else chain of them) binding ``key``."""

    key: str
    scope: Scope
    statement: cst.CSTNode  # a SimpleStatementLine, or an If chain
    value: cst.BaseExpression | None  # the assigned expression (None for an if chain)
    location: tuple
    cuda_condition: cst.BaseExpression | None  # when the device is an accelerator; None: always
    cpu_literal: bool = False  # the definition is an unconditional "cpu"
    string: bool = False  # the device is held as a string ("cuda"), and may be used as one
    device_argument: cst.BaseExpression | None = None  # torch.device(args.device)


@dataclass(eq=False)
class Flag:
    """``use_cuda = ... torch.cuda.is_available()``: a boolean that selects the device."""

    name: str
    assignment: Assignment


@dataclass(eq=False)
class Move:
    """A ``.to(<device>)`` or ``.cuda()`` call; ``kind`` is "batch", "model" or "other". ``sources``: the model's
    binding for a model move, the loaders the batch comes from for a batch move."""

    site: CallSite
    kind: str
    sources: frozenset = frozenset()

    @property
    def call(self) -> cst.Call:
        return self.site.node


def _device_branches(node: cst.If) -> list[tuple[cst.BaseExpression | None, cst.Assign]] | None:
    """For ``if a: device = X elif b: device = Y else: device = Z``: [(a, assign X), (b, ...), (None, ...)]."""
    branches = []
    current: cst.If | cst.Else | None = node
    while current is not None:
        body = current.body
        if not isinstance(body, cst.IndentedBlock) or len(body.body) != 1:
            return None
        line = body.body[0]
        if not isinstance(line, cst.SimpleStatementLine) or len(line.body) != 1:
            return None
        assign = line.body[0]
        if not isinstance(assign, cst.Assign) or len(assign.targets) != 1:
            return None
        branches.append((current.test if isinstance(current, cst.If) else None, assign))
        current = current.orelse if isinstance(current, cst.If) else None
    if branches[-1][0] is not None:
        return None  # no else: the variable may stay unbound
    return branches


def find_device_definitions(analysis: Analysis) -> None:
    chained: set[int] = set()
    for node, scope, location in analysis.facts.if_statements:
        branches = _device_branches(node)
        if branches is None:
            continue
        keys = {dotted_name(assign.targets[0].target) for _, assign in branches}
        if len(keys) != 1 or None in keys:
            continue
        if not all(analysis.is_device_expression(assign.value) for _, assign in branches):
            continue
        conditions = [test for test, assign in branches if test is not None and not is_cpu_literal(assign.value)]
        condition = conditions[0] if len(conditions) == 1 else None
        if len(conditions) > 1:
            condition = cst.BooleanOperation(conditions[0], cst.Or(), conditions[1])
        key = keys.pop()
        definition = DeviceDefinition(key, scope, node, None, location, condition)
        definition.string = all(is_string_device(assign.value) for _, assign in branches)
        analysis.device_definitions.append(definition)
        set_role(analysis, analysis.binding(scope, key), DEVICE, None)
        chained.update(id(line) for line in _if_lines(node))
    for assignment in analysis.facts.assignments:
        if len(assignment.targets) != 1 or id(assignment.statement) in chained:
            continue
        key = dotted_name(assignment.targets[0])
        value = assignment.value
        if key is None or not analysis.is_device_expression(value):
            continue
        definition = DeviceDefinition(key, assignment.scope, assignment.statement, value, assignment.location, None)
        definition.string = is_string_device(value)
        _describe_device(analysis, definition, value)
        analysis.device_definitions.append(definition)
        set_role(analysis, analysis.binding(assignment.scope, key), DEVICE, assignment)
    # parameters with a device default (``device="cuda:0"``): devices, which AC003 has the calls pass
    for default in device_defaults(analysis):
        set_role(analysis, analysis.binding(default.function, default.name), DEVICE, None)
    # devices handed to helpers as arguments
    propagate(analysis)


def drop_overwritten_devices(analysis: Analysis) -> None:
    """Forget a device definition that a later one in the same scope surely replaces before anything reads it
    (a module-level default that ``if __name__ == "__main__":`` sets again from the parsed options): the later
    one is the device the run uses, and the accelerator is created there. The earlier line stays as written."""
    facts = analysis.facts
    local_callables = set(facts.functions) | set(facts.classes)

    def path(location) -> tuple[int, ...]:
        return tuple(index for _, index in location)

    def reads_between(scope, key, start, end) -> bool:
        loads = [(load.name, load.location) for load in facts.loads if load.scope is scope]
        loads += [(dotted_name(read.node), read.location) for read in facts.attribute_reads if read.scope is scope]
        calls = [
            site.location
            for site in facts.calls
            if site.scope is scope and isinstance(site.node.func, cst.Name) and site.node.func.value in local_callables
        ]
        between = lambda location: start < path(location) < end  # noqa: E731
        return any(name == key and between(location) for name, location in loads) or any(map(between, calls))

    kept = []
    for definition in analysis.device_definitions:
        later = [
            other
            for other in analysis.device_definitions
            if other.scope is definition.scope
            and other.key == definition.key
            and path(other.location) > path(definition.location)
            and runs_after(facts, definition.location, other.location)
        ]
        if any(
            not reads_between(definition.scope, definition.key, path(definition.location), path(other.location))
            and definition.key not in _read_names(other.statement)
            for other in later
        ):
            continue
        kept.append(definition)
    analysis.device_definitions = kept


def _read_names(statement: cst.CSTNode) -> set[str]:
    """Names and dotted names read by the values a statement assigns (an if chain: its tests too)."""
    found: set[str] = set()

    class _Reads(Walker):
        def visit_AssignTarget(self, node: cst.AssignTarget) -> bool:
            return False

        def visit_Name(self, node: cst.Name) -> None:
            found.add(node.value)

        def visit_Attribute(self, node: cst.Attribute) -> None:
            key = dotted_name(node)
            if key is not None:
                found.add(key)

    _Reads().walk(statement)
    return found


def runs_after(facts, first, second) -> bool:
    """True when the statement at ``second`` surely runs once the one at ``first`` has: it lies later in the same
    block, or in ``if __name__ == "__main__":`` blocks there (the path that runs the script)."""
    depth = len(first) - 1
    if second[:depth] != first[:depth] or len(second) <= depth or second[depth][0] != first[depth][0]:
        return False
    for (block, index), (inner, _) in zip(second[depth:], second[depth + 1 :]):
        statement = facts.statement_at(block, index)
        if not (isinstance(statement, cst.If) and _is_main_guard(statement.test) and id(statement.body) == inner):
            return False
    return True


def _is_main_guard(test: cst.BaseExpression) -> bool:
    """``__name__ == "__main__"`` (either way round)."""
    if not (isinstance(test, cst.Comparison) and len(test.comparisons) == 1):
        return False
    if not isinstance(test.comparisons[0].operator, cst.Equal):
        return False
    sides = [test.left, test.comparisons[0].comparator]
    names = [side for side in sides if isinstance(side, cst.Name) and side.value == "__name__"]
    strings = [side for side in sides if isinstance(side, cst.SimpleString) and side.evaluated_value == "__main__"]
    return len(names) == 1 and len(strings) == 1


def option_dest(call: cst.Call) -> str | None:
    """The ``args`` attribute an ``add_argument("--device", ...)`` call fills, when it picks a device."""
    func = call.func
    if not (isinstance(func, cst.Attribute) and func.attr.value == "add_argument") or not call.args:
        return None
    first = call.args[0].value
    if not is_string(first, lambda v: v.startswith("--")):
        return None
    dest = first.evaluated_value[2:].replace("-", "_")
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == "dest" and isinstance(arg.value, cst.SimpleString):
            dest = arg.value.evaluated_value
    return dest


def _parsed_arguments(analysis: Analysis) -> list[tuple[Scope, str]]:
    """Variables holding ``parser.parse_args()`` (directly or returned by a function of the file)."""
    parsers = {
        scope
        for scope, values in analysis.facts.returns.items()
        if any(_calls_parse_args(value) for value in values)
    }
    found = []
    for assignment in analysis.facts.assignments:
        value = assignment.value
        key = dotted_name(assignment.targets[0]) if len(assignment.targets) == 1 else None
        if key is None or not isinstance(value, cst.Call):
            continue
        helper = isinstance(value.func, cst.Name) and analysis.facts.functions.get(value.func.value) in parsers
        if _calls_parse_args(value) or helper:
            found.append((assignment.scope, key))
    return found


def _calls_parse_args(node: cst.BaseExpression) -> bool:
    return isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == "parse_args"


def find_option_devices(analysis: Analysis) -> None:
    """``parser.add_argument("--device", default="cuda" if ... else "cpu")``: ``args.device`` holds the device."""
    options = {}
    for site in analysis.facts.calls:
        dest = option_dest(site.node)
        if dest is None:
            continue
        default = next((a.value for a in site.node.args if a.keyword is not None and a.keyword.value == "default"), None)
        if dest == "device" or (default is not None and analysis.is_device_expression(default)):
            options[dest] = site.node
    if not options:
        return
    for scope, key in _parsed_arguments(analysis):
        for dest, call in options.items():
            binding = analysis.binding(scope, f"{key}.{dest}")
            analysis.option_devices[binding] = call
            set_role(analysis, binding, DEVICE, None)


def _if_lines(node: cst.If):
    current = node
    while current is not None:
        yield from current.body.body
        current = getattr(current, "orelse", None)


def _describe_device(analysis: Analysis, definition: DeviceDefinition, value: cst.BaseExpression) -> None:
    """Fill in when the definition picks an accelerator (its condition), or that it is always the CPU."""
    if isinstance(value, cst.Call) and analysis.qualify(value.func) == "torch.device":
        positional = [arg.value for arg in value.args if arg.keyword is None]
        if positional and not is_device_literal(positional[0]) and not isinstance(positional[0], cst.IfExp):
            definition.device_argument = positional[0]
            return
        if positional:
            value = positional[0]
    if isinstance(value, cst.IfExp):
        if is_cpu_literal(value.orelse):
            definition.cuda_condition = value.test
        elif is_cpu_literal(value.body):
            definition.cuda_condition = cst.UnaryOperation(cst.Not(), value.test)
        return
    definition.cpu_literal = is_cpu_literal(value)


def _contains_availability_check(analysis: Analysis, node: cst.CSTNode) -> bool:
    found = []

    class _Finder(Walker):
        def visit_Call(self, call: cst.Call) -> None:
            if analysis.qualify(call.func) in symbols.AVAILABILITY_CHECKS:
                found.append(call)

    _Finder().walk(node)
    return bool(found)


def find_flags(analysis: Analysis) -> None:
    checked = {
        id(site.statement)
        for site in analysis.facts.calls
        if analysis.qualify(site.node.func) in symbols.AVAILABILITY_CHECKS
    }
    for assignment in analysis.facts.assignments:
        if id(assignment.statement) not in checked:
            continue
        if len(assignment.targets) != 1 or analysis.is_device_expression(assignment.value):
            continue
        key = dotted_name(assignment.targets[0])
        value = assignment.value
        if key is not None and _is_boolean(analysis, value) and _contains_availability_check(analysis, value):
            analysis.flags.append(Flag(key, assignment))


def _is_boolean(analysis: Analysis, node: cst.BaseExpression) -> bool:
    """Whether ``node`` reads as a true/false value: an availability check or ``bool(...)``, a name or attribute,
    ``not``, ``and``/``or``, a comparison, or a conditional choosing between such values. A wrapper call
    (``DDP(model, device_ids=[r] if torch.cuda.is_available() else None)``) or a list chosen by a check is no flag."""
    if isinstance(node, cst.IfExp):
        return _is_boolean(analysis, node.body) and _is_boolean(analysis, node.orelse)
    if isinstance(node, cst.Call):
        return analysis.qualify(node.func) in symbols.AVAILABILITY_CHECKS or (
            isinstance(node.func, cst.Name) and node.func.value == "bool"
        )
    return isinstance(node, (cst.Name, cst.Attribute, cst.UnaryOperation, cst.BooleanOperation, cst.Comparison))


def find_moves(analysis: Analysis) -> None:
    created = [
        (analysis.binding(assignment.scope, dotted_name(assignment.targets[0])), assignment.scope, assignment.value)
        for assignment in analysis.facts.assignments
        if len(assignment.targets) == 1 and dotted_name(assignment.targets[0]) is not None
    ]
    created += _returned_models(analysis)
    for binding, scope, node in created:
        if analysis.roles.get(binding) != MODEL:
            continue
        while isinstance(node, cst.Call) and analysis.is_move_call(node, scope):
            analysis.model_moves[id(node)] = binding
            node = node.func.value
    for site in analysis.facts.calls:
        call = site.node
        if not analysis.is_move_call(call, site.scope):
            continue
        receiver = call.func.value
        key = dotted_name(receiver)
        model = analysis.model_moves.get(id(call)) or (analysis.binding(site.scope, key) if key is not None else None)
        loaders = batch_loaders(analysis, site, receiver)
        if analysis.roles.get(model) == MODEL:
            analysis.moves.append(Move(site, "model", frozenset({model})))
        elif loaders is not None:
            analysis.moves.append(Move(site, "batch", frozenset(loaders)))
        else:
            analysis.moves.append(Move(site, "other"))


def _returned_models(analysis: Analysis) -> list[tuple[Binding, Scope, cst.BaseExpression]]:
    """Models a factory creates in its return statement (``return Net().to(device)``) that a caller uses as its
    model: they take the model role, so that a move chained on them is a model move."""
    found = []
    for target, source, alias, via in analysis.edges:
        function, key = source
        if alias or via is None or not key.startswith("return[") or analysis.roles.get(target) != MODEL:
            continue
        set_role(analysis, source, MODEL, None)
        found.append((source, function, factory_returns(analysis, function)[int(key[len("return[") : -1])]))
    return found

