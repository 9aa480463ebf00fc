"""Random splits of a data set that come out differently in every process.

Under `accel launch` every process runs the script from the start. A split drawn from a global random generator
(``random_split(ds, [a, b])`` without ``generator=``, ``np.random.permutation(n)``, ``train_test_split`` without
``random_state=``, a Hugging Face ``dataset.shuffle()``) is the same in every process only when every process has
seeded that generator alike first; a generator made without a seed (``np.random.default_rng()``) never is. Otherwise
each process splits differently, and a sample one process holds out is another's training sample.

Splits inside loops (a fresh permutation every epoch), or in a function called inside one (a replay buffer's
``random.sample(self.buffer, n)``), are a training loop's own randomness, not a split.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from accel_convert.analysis.everywhere import callers_of, enclosing, statement_order
from accel_convert.analysis.facts import CallSite
from accel_convert.analysis.roles import repeated_scopes
from accel_convert.analysis.symbols import RANDOM_SPLITS, SEEDS, UNSEEDED_GENERATORS

_DRAWS = frozenset({"permutation", "shuffle", "choice", "sample"})
_GENERATOR_NAMES = {"torch": "torch's", "numpy": "NumPy's", "random": "Python's `random`"}


@dataclass(frozen=True)
class Unseeded:
    """A split (or an unseeded generator) that differs between processes.

    ``generator``: the global generator it draws from ("torch", "numpy", "random"), None for a generator made
    without a seed; ``seeded_under``: the ``if`` that alone seeds that generator, when one does."""

    site: CallSite
    generator: str | None
    seeded_under: cst.If | None = None

    @property
    def generator_name(self) -> str:
        return _GENERATOR_NAMES.get(self.generator or "", "")


def unseeded_splits(analysis) -> list[Unseeded]:
    facts = analysis.facts
    seeds: dict[str, list[CallSite]] = {}
    for site in facts.calls:
        for generator in SEEDS.get(analysis.qualify(site.node.func) or "", ()):
            seeds.setdefault(generator, []).append(site)
    datasets = any(name == "datasets" or name.startswith("datasets.") for name in analysis.imports.names.values())
    unseeded = _unseeded_generators(analysis)
    order = None
    found = []
    repeated = repeated_scopes(analysis)
    for site in facts.calls:
        if site.loops or site.comprehensions or site.scope in repeated or _method_called_in_a_loop(facts, site.scope):
            continue
        call = site.node
        qualified = analysis.qualify(call.func)
        if _draws_from(analysis, site, unseeded):
            found.append(Unseeded(site, None))
            continue
        if qualified in RANDOM_SPLITS:
            generator, own = RANDOM_SPLITS[qualified]
            if own is not None and _given(call, *own):
                continue
        elif datasets and _dataset_shuffle(call):
            generator = "numpy"
        else:
            continue
        order = order if order is not None else statement_order(facts)
        seeded = _seeded(analysis, order, site, seeds.get(generator, []))
        if seeded is not True:
            found.append(Unseeded(site, generator, seeded))
    return found


def _method_called_in_a_loop(facts, scope) -> bool:
    """``scope`` is a method whose name some loop calls (``memory.sample(n)`` on a replay buffer)."""
    return scope.class_name is not None and any(site.loops for site in facts.method_calls(scope.name))


def _unseeded_generators(analysis) -> set:
    """Bindings of ``rng = np.random.default_rng()`` (``RandomState()``, ``random.Random()``) made without a seed."""
    found = set()
    for assignment in analysis.facts.assignments:
        value = assignment.value
        if len(assignment.targets) != 1 or not isinstance(assignment.targets[0], cst.Name):
            continue
        if isinstance(value, cst.Call) and analysis.qualify(value.func) in UNSEEDED_GENERATORS:
            if not value.args or _is_none(value.args[0].value):
                found.add(analysis.binding(assignment.scope, assignment.targets[0].value))
    return found


def _draws_from(analysis, site: CallSite, generators: set) -> bool:
    """``rng.permutation(...)`` (``shuffle``, ``choice``, ``sample``) on an unseeded generator."""
    func = site.node.func
    if not (isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name)):
        return False
    if func.attr.value not in _DRAWS:
        return False
    return analysis.binding(site.scope, func.value.value) in generators


def _given(call: cst.Call, keyword: str, position: int | None) -> bool:
    """The call passes its own generator (or seed): ``keyword=`` not None, or positionally."""
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == keyword:
            return not _is_none(arg.value)
    positional = [arg for arg in call.args if arg.keyword is None and arg.star == ""]
    return position is not None and len(positional) > position


def _dataset_shuffle(call: cst.Call) -> bool:
    """``dataset.shuffle()`` of Hugging Face datasets: no positional argument, no ``seed=`` nor ``generator=``."""
    func = call.func
    if not (isinstance(func, cst.Attribute) and func.attr.value == "shuffle"):
        return False
    if any(arg.keyword is None for arg in call.args):
        return False
    return not any(
        arg.keyword.value in ("seed", "generator") and not _is_none(arg.value) for arg in call.args if arg.keyword
    )


def _seeded(analysis, order, site: CallSite, seeds: list[CallSite]) -> bool | cst.If | None:
    """True when a seed call of the generator runs before the split in every run: unconditionally, and earlier in
    the file where it is in the split's own function; else the ``if`` that alone seeds it, or None."""
    facts = analysis.facts
    split_at = order[id(facts.statement_at(*site.location[-1]))]
    conditional = None
    for seed in seeds:
        if seed.scope is site.scope and order[id(facts.statement_at(*seed.location[-1]))] > split_at:
            continue
        branch = _branch(analysis, seed.scope, seed.location)
        if branch is None:
            return True
        conditional = conditional or branch
    return conditional


def _branch(analysis, scope, location, depth: int = 0) -> cst.If | None:
    """The ``if`` under which the statement at ``location`` alone runs, following the calls of the function it is
    in (``if args.seed is not None: set_seed(args.seed)``); None where it runs unconditionally."""
    branch = next(
        (s for s in enclosing(analysis.facts, scope, location) if isinstance(s, cst.If) and not _main_guard(s.test)),
        None,
    )
    if branch is not None or scope.parent is None or depth > 8:
        return branch
    callers = [_branch(analysis, site.scope, site.location, depth + 1) for site in callers_of(analysis, scope)]
    if not callers or any(found is None for found in callers):
        return None
    return callers[0]


def _is_none(node) -> bool:
    return isinstance(node, cst.Name) and node.value == "None"


def _main_guard(test) -> bool:
    """``__name__ == "__main__"``: every process runs the script as the main module."""
    return isinstance(test, cst.Comparison) and isinstance(test.left, cst.Name) and test.left.value == "__name__"
