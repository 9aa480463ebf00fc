"""Where a script reads its rank and tests for rank 0: ``int(os.environ["LOCAL_RANK"])``, ``dist.get_rank()``, the
variables holding them, ``rank == 0`` / ``local_rank in [-1, 0]`` guards and names that hold such a test
(``master_process = ddp_rank == 0``)."""

from __future__ import annotations

import libcst as cst

from accel_convert.analysis.devices import option_dest
from accel_convert.analysis.imports import dotted_name

# the launcher's environment variables and the accelerator property holding the same number
ENVIRONMENT = {"LOCAL_RANK": "local_process_index", "RANK": "process_index", "WORLD_SIZE": "num_processes"}
RANK_CALLS = {"torch.distributed.get_rank": "RANK"}
# which process a rank-0 guard selects
GUARDS = {"RANK": "is_main_process", "LOCAL_RANK": "is_local_main_process"}


def environment_key(analysis, node: cst.BaseExpression) -> str | None:
    """``os.environ["X"]``, ``os.environ.get("X", d)``, ``os.getenv("X", d)`` -> ``X``."""
    if isinstance(node, cst.Subscript) and analysis.qualify(node.value) == "os.environ" and len(node.slice) == 1:
        index = node.slice[0].slice
        key = index.value if isinstance(index, cst.Index) else None
    elif isinstance(node, cst.Call) and node.args and (
        analysis.qualify(node.func) == "os.getenv"
        or (isinstance(node.func, cst.Attribute) and node.func.attr.value == "get" and analysis.qualify(node.func.value) == "os.environ")
    ):
        key = node.args[0].value
    else:
        return None
    return key.evaluated_value if isinstance(key, cst.SimpleString) else None


def rank_of(analysis, call: cst.Call) -> str | None:
    """``int(<environment read of RANK, LOCAL_RANK or WORLD_SIZE>)`` or ``dist.get_rank()`` -> the variable."""
    qualified = analysis.qualify(call.func)
    if qualified in RANK_CALLS:
        return RANK_CALLS[qualified] if not call.args else None
    if not isinstance(call.func, cst.Name) or call.func.value != "int" or len(call.args) != 1:
        return None
    key = environment_key(analysis, call.args[0].value)
    return key if key in ENVIRONMENT else None


def rank_variables(analysis) -> dict:
    """Bindings assigned exactly once, from a rank read: binding -> RANK or LOCAL_RANK."""
    found, counts = {}, {}
    for assignment in analysis.facts.assignments:
        for target in assignment.targets:
            key = dotted_name(target)
            if key is None:
                continue
            binding = analysis.binding(assignment.scope, key)
            counts[binding] = counts.get(binding, 0) + 1
            value = assignment.value
            if len(assignment.targets) == 1 and isinstance(value, cst.Call):
                name = rank_of(analysis, value)
                if name in GUARDS:
                    found[binding] = name
    return {binding: name for binding, name in found.items() if counts[binding] == 1}


def guard_kind(analysis, scope, subject) -> str:
    if isinstance(subject, cst.Call):
        return rank_of(analysis, subject)
    return rank_variables(analysis).get(analysis.binding(scope, dotted_name(subject)), "LOCAL_RANK")


def rank_zero_guards(analysis):
    """Rank-0 tests in ``if`` statements: (test, its rank subject, scope, location, if statement)."""
    variables = rank_variables(analysis)
    option = declares_local_rank_option(analysis)
    for statement, scope, location in analysis.facts.if_statements:
        for node, subject in rank_zero_tests(statement.test):
            if is_rank(analysis, scope, subject, variables, option):
                yield node, subject, scope, location, statement


def is_rank(analysis, scope, node, variables, option: bool) -> bool:
    """A rank read, a variable holding one, or ``args.local_rank`` where the script declares ``--local_rank``."""
    if isinstance(node, cst.Call):
        return rank_of(analysis, node) in GUARDS
    key = dotted_name(node)
    if key is None:
        return False
    return analysis.binding(scope, key) in variables or (option and isinstance(node, cst.Attribute) and node.attr.value == "local_rank")


def declares_local_rank_option(analysis) -> bool:
    """``parser.add_argument("--local_rank", ...)``: the option ``torch.distributed.launch`` used to pass."""
    return any(option_dest(site.node) == "local_rank" for site in analysis.facts.calls)


def _selected(node) -> tuple[cst.BaseExpression, set] | None:
    """``x == 0`` -> (x, {0}); ``x in [-1, 0]`` / ``(-1, 0)`` / ``{0}`` -> (x, {-1, 0}); ``a == -1 or a == 0`` too."""
    if isinstance(node, cst.BooleanOperation) and isinstance(node.operator, cst.Or):
        left, right = _selected(node.left), _selected(node.right)
        if left and right and left[0].deep_equals(right[0]):
            return left[0], left[1] | right[1]
        return None
    if not isinstance(node, cst.Comparison) or len(node.comparisons) != 1:
        return None
    operator, right = node.comparisons[0].operator, node.comparisons[0].comparator
    if isinstance(operator, cst.Equal):
        return node.left, {_integer(right)}
    if isinstance(operator, cst.In) and isinstance(right, (cst.List, cst.Tuple, cst.Set)):
        return node.left, {_integer(element.value) for element in right.elements}
    return None


def _integer(node) -> int | None:
    if isinstance(node, cst.Integer):
        return int(node.value)
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus) and isinstance(node.expression, cst.Integer):
        return -int(node.expression.value)
    return None


def rank_zero_tests(test: cst.BaseExpression):
    """The parts of a test that select rank 0, through ``and``/``or``/``not``: (part, rank subject)."""
    selected = _selected(test)
    if selected is not None and 0 in selected[1] and selected[1] <= {0, -1}:
        yield test, selected[0]
    elif isinstance(test, cst.BooleanOperation):
        yield from rank_zero_tests(test.left)
        yield from rank_zero_tests(test.right)
    elif isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        yield from rank_zero_tests(test.expression)


def main_process_names(analysis) -> set:
    """Bindings that hold "this is the main process": every assignment of them is a rank-0 test (``master_process =
    ddp_rank == 0``) or ``True`` (the branch without a launcher), at least one a test."""
    variables = rank_variables(analysis)
    option = declares_local_rank_option(analysis)
    tests, others = set(), set()
    for assignment in analysis.facts.assignments:
        if len(assignment.targets) != 1 or (key := dotted_name(assignment.targets[0])) is None:
            continue
        binding = analysis.binding(assignment.scope, key)
        value = assignment.value
        whole = [node for node, subject in rank_zero_tests(value) if node is value and is_rank(analysis, assignment.scope, subject, variables, option)]
        if whole:
            tests.add(binding)
        elif not (isinstance(value, cst.Name) and value.value == "True"):
            others.add(binding)
    return tests - others
