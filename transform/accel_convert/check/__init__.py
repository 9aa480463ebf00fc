"""The output check: invariants a converted script must hold before anything is written (black's safety check, for
distributed training).

API::

    from accel_convert.check import Violation, check

    violations = check(before, after)  # before: the original source, after: the converted source; both must parse

``check`` returns a list of ``Violation`` (empty: the output holds every invariant), sorted by line. Each names:

- ``invariant``: a short stable id, one of ``INVARIANTS``;
- ``binding``: the name, as written in the converted code, of the object whose decision is wrong (the loader or model
  passed to ``prepare``, the loader whose batches lost their moves, the object whose move was removed), so that the
  caller can withdraw that object from the prepared set and keep its moves; ``None`` when the violation cannot be
  localised (the caller then declines the whole file);
- ``scope``: the qualified name of the function where ``binding`` lives (``""``: module level, ``"Trainer.__init__"``);
- ``line``: the 1-based line in the converted text;
- ``message``: one sentence for the user, naming the invariant.

The invariants (one module each, or one per group):

- ``unprepared-loader`` (``loaders``): a loop that trains or evaluates a prepared model over a ``DataLoader`` that is
  not prepared keeps an explicit device move of its batches;
- ``gather-unprepared`` (``loaders``): ``gather`` / ``gather_for_metrics`` only over batches of prepared loaders;
- ``backward-unwrapped`` (``backward``): the loss reaches ``accelerator.backward`` through the prepared model: never
  through ``accelerator.unwrap_model(m).method(...)``, and never through a name that still holds the model as it
  was before ``prepare`` (``model_without_ddp = accelerator.prepare(model)`` while the loop trains ``model``);
- ``sampler-under-prepare`` (``samplers``): no ``DistributedSampler`` (or batch sampler built on one) in a loader
  passed to ``prepare``;
- ``move-of-unprepared`` (``moves``): a device move of the original that the conversion removed was on a prepared
  object or on a batch of a prepared loader;
- ``prepare-arg-unbound`` (``bound``): every object passed to ``prepare`` is bound on every path that reaches it.

The check parses both texts with Python's ``ast`` and keeps its own small model of them (``scopes``, ``flow``); it
does not use the converter's libcst analysis, so it costs a few milliseconds a file.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from dataclasses import dataclass

# id -> what must hold, one phrase (rule pages quote it)
INVARIANTS = {
    "unprepared-loader": "a loop that feeds a prepared model over a `DataLoader` that is not prepared keeps an explicit "
    "device move of its batches",
    "gather-unprepared": "`gather` / `gather_for_metrics` only over batches of prepared loaders",
    "backward-unwrapped": "the loss reaches `accelerator.backward` through the prepared model, never through "
    "`accelerator.unwrap_model(m).method(...)` or a name that still holds the model as it was before `prepare`",
    "sampler-under-prepare": "no `DistributedSampler` (or batch sampler built on one) in a loader passed to `prepare`",
    "move-of-unprepared": "a device move of the original that the conversion removed was on a prepared object or on a "
    "batch of a prepared loader",
    "prepare-arg-unbound": "every object passed to `prepare` is bound on every path that reaches it",
}


@dataclass(frozen=True)
class Violation:
    invariant: str  # one of INVARIANTS
    binding: str | None  # the object whose decision is wrong, as named in the converted code; None: not localised
    line: int  # 1-based, in the converted text
    message: str  # one sentence, naming the invariant
    scope: str | None = None  # qualified name of the function binding lives in; "" module level

    def format(self, path: str = "after.py") -> str:
        return f"{path}:{self.line}: {self.message}"


def parse(text: str) -> ast.Module:
    return ast.parse(text[1:] if text.startswith("\ufeff") else text)


def check(
    before: str,
    after: str,
    *,
    before_tree: ast.Module | None = None,
    after_tree: ast.Module | None = None,
) -> list[Violation]:
    """The invariants ``after`` (the conversion of ``before``) breaks; ``*_tree``: their ``ast`` if already parsed."""
    from accel_convert.check import backward, bound, loaders, moves, samplers
    from accel_convert.check.flow import Flow
    from accel_convert.check.scopes import Program

    converted = Flow(Program(after_tree if after_tree is not None else parse(after)))
    found = [
        *loaders.unprepared_loaders(converted),
        *loaders.gathers_over_unprepared(converted),
        *backward.backward_through_unwrapped(converted),
        *samplers.samplers_under_prepare(converted),
        *bound.unbound_prepare_arguments(converted),
    ]
    original = Flow(Program(before_tree if before_tree is not None else parse(before)))
    found += moves.removed_moves(original, converted)
    unique = {}
    for violation in found:
        unique.setdefault((violation.invariant, violation.binding, violation.line), violation)
    return sorted(_original_lines(unique.values(), before, after), key=lambda v: (v.line, v.invariant))


def _original_lines(violations, before: str, after: str) -> list[Violation]:
    """The violations, with the lines their messages cite (``made on line N``: a statement the conversion kept) as
    lines of ``before``, which is what the user reads when the file is left as it is."""
    violations = list(violations)
    if not any(_CITED.search(v.message) for v in violations):
        return violations
    import difflib  # only when a message cites a line: ``--check`` of a clean file never loads it

    matcher = difflib.SequenceMatcher(None, before.splitlines(), after.splitlines(), autojunk=False)
    shifts = [(b, a, size) for a, b, size in matcher.get_matching_blocks() if size]

    def original(match: re.Match) -> str:
        line = int(match.group(2)) - 1
        found = next((a + line - b for b, a, size in shifts if b <= line < b + size), None)
        return match.group(0) if found is None else f"{match.group(1)}{found + 1}"

    return [dataclasses.replace(v, message=_CITED.sub(original, v.message)) for v in violations]


_CITED = re.compile(r"(made on line )(\d+)")
