"""AC021 unconverted-patterns."""

from __future__ import annotations

import libcst as cst

from accel_convert.analysis import symbols
from accel_convert.analysis.imports import dotted_name
from accel_convert.analysis.randomness import unseeded_splits
from accel_convert.analysis.roles import OPTIMIZER
from accel_convert.analysis.traverse import Walker
from accel_convert.edits.plan import Pending
from accel_convert.model import Diagnostic
from accel_convert.rules.base import Rule


class UnconvertedPatterns(Rule):
    """Report training code the converter leaves as it is: helper classes, hand-written updates, apex AMP.

    ## Why
    The converter follows models, optimizers and losses through plain functions. Code that wraps them in an object
    of the script's own making can hide a step or a backward pass from it: the converted script then runs, but
    does not do what `accelerate` would do there. Some scripts have nothing it can prepare, or train in a way it
    must not convert around; they are left unchanged, and the diagnostic says why.

    ## What it does
    Nothing is rewritten; a diagnostic names each of these shapes:

    - an **optimizer wrapper**: a class of the file with a `step` method (not an `nn.Module`) that is given an
      optimizer, such as a Lookahead or warm-up wrapper. `accelerator.prepare` must get the inner optimizer and
      the wrapper must wrap the prepared one; its own `step()` is not adapted to gradient accumulation.
    - a **backward pass in a helper object**, when no training run was recognised: `.backward()` called in a
      method of a class that is not an `nn.Module`. The helper must use the prepared model and optimizer and call
      `accelerator.backward(loss)`: give it the accelerator. (Where a training run is recognised, AC004 converts
      such a call or says why not.)
    - **hand-written parameter updates** with no `torch.optim` optimizer in the file (`w -= lr * w.grad`,
      `p.data.add_(-lr * p.grad)`), or a `.backward()` with no optimizer at all: there is nothing to prepare, and
      under several processes each one would train its own copy of the parameters. The file is left unchanged; with
      an optimizer from `torch.optim` it converts. A file with no `.backward()` (evaluation, data preparation) gets
      no diagnostic.
    - a **random split made before training that is not seeded alike in every process**:
      `random_split(ds, [a, b])` without `generator=`, `np.random.permutation(n)`, `torch.randperm(n)`,
      `random.shuffle(rows)`, `train_test_split(...)` without `random_state=`, a Hugging Face `dataset.shuffle()`
      without `seed=`, when nothing seeds the global generator it draws from before it (or only under an `if`, as
      `if args.seed is not None: set_seed(args.seed)`), and a split drawn from a generator made without a seed
      (`rng = np.random.default_rng()`). Every process runs the script, so each would make its own split, and
      samples one process holds out would be another's training samples. Seeding it changes which samples each
      part gets, with one process too, so the split is left to the user. Splits inside loops (a permutation every
      epoch) are not reported.
    - **NVIDIA apex AMP** (`amp.initialize`, `amp.scale_loss`) and apex's `FP16_Optimizer` (fp32 master weights,
      `optimizer.backward(loss)`): apex must wrap the model (or the optimizer) before any other wrapper and runs its
      own scaled backward, so the whole file is left unchanged. Replace it with `torch.amp` (`autocast`
      and `GradScaler`), which AC014 converts, and run the converter again.

    ## Example
    ```python
    class Lookahead:
        def __init__(self, optimizer):
            self.optimizer = optimizer

        def step(self):
            self.optimizer.step()

    optimizer = Lookahead(torch.optim.SGD(model.parameters(), lr=0.1))
    ```
    becomes the same code, with the diagnostic
    ```text
    AC021 `Lookahead` wraps an optimizer and has its own `step()`, which is not converted: create the inner
    optimizer on its own line, so that `accelerator.prepare` gets it, and wrap the prepared one
    ```
    """

    code = "AC021"
    name = "unconverted-patterns"
    summary = "Report training code the converter leaves as it is: helper classes, hand-written updates, apex AMP."

    reports_without_run = True

    def declines(self, analysis):
        return apex_amp(analysis)

    def plan(self, context, plan):
        analysis = context.analysis
        classes = analysis.facts.classes
        wrappers = {
            name
            for name, info in classes.items()
            if "step" in info.methods and name not in analysis.model_classes and not _is_optimizer_class(analysis, info)
        }
        reported = set()
        for site in analysis.facts.calls:
            func = site.node.func
            if not (isinstance(func, cst.Name) and func.value in wrappers and func.value not in reported):
                continue
            inner = next((arg.value for arg in site.node.args if _is_optimizer(analysis, site.scope, arg.value)), None)
            if inner is None:
                continue
            reported.add(func.value)
            if context.access is None:
                advice = "no training run was recognised through it; prepare the inner optimizer by hand and wrap the prepared one"
            elif isinstance(inner, cst.Call):
                advice = "create the inner optimizer on its own line, so that `accelerator.prepare` gets it, and wrap the prepared one"
            else:
                advice = f"check that it wraps the prepared `{context.code(inner)}` and that its `step()` suits gradient accumulation"
            message = f"`{func.value}` wraps an optimizer and has its own `step()`, which is not converted: {advice}"
            plan.diagnostics.append(context.diagnostic(self.code, site.node, message))
        if context.access is not None:
            for split in unseeded_splits(analysis):
                plan.diagnostics.append(context.diagnostic(self.code, split.site.node, _unseeded_message(context, split)))
            return  # a training run was found: AC004 handles each backward call
        if not any(role == OPTIMIZER for role in analysis.roles.values()):
            _report_training_without_optimizer(context, plan, self.code)
        said = {id(pending.node) for pending in context.decisions.declined}
        for site in analysis.backward_calls:
            owner = site.scope.class_name
            if owner is None or owner in analysis.model_classes or id(site.node) in said:
                continue  # AC001 named what it found at this backward (an optimizer from a call, say)
            receiver = context.code(site.node.func.value)
            plan.diagnostics.append(
                context.diagnostic(
                    self.code,
                    site.node,
                    f"`{receiver}.backward()` runs in `{owner}.{site.scope.name}`, a helper class that is not an "
                    "`nn.Module`: give the helper the accelerator, the prepared model and optimizer, "
                    "and call `accelerator.backward(...)` there",
                )
            )


def _unseeded_message(context, split) -> str:
    """What an unseeded split does under several processes, and how to seed it (``randomness.unseeded_splits``)."""
    call = split.site.node
    name = context.code(call.func)
    harm = (
        "under several processes each process splits differently, so samples one process holds out are another's "
        "training samples"
    )
    if split.generator is None:
        return (
            f"`{name}(...)` draws from a generator made without a seed, which starts from a fresh seed in every process: "
            f"{harm}; give the generator a seed (the same in every process); nothing converted"
        )
    qualified = context.analysis.qualify(call.func) or ""
    if qualified.endswith("train_test_split"):
        fix = "`random_state=...`"
    elif qualified.endswith(("random_split", "randperm")):
        fix = "`generator=torch.Generator().manual_seed(...)`, or `torch.manual_seed(...)` before it"
    elif qualified.startswith("numpy.") or not qualified:
        fix = "`seed=...`" if not qualified else "`np.random.seed(...)` before it, or a seeded `np.random.default_rng(...)`"
    else:
        fix = "`random.seed(...)` before it"
    if split.seeded_under is not None:
        seeded = f"which is seeded only under `if {context.code(split.seeded_under.test)}:`; without that seed,"
    else:
        seeded = "which nothing seeds before it:"
    return (
        f"`{name}(...)` draws from {split.generator_name} global random generator, {seeded} {harm}; seed it the same "
        f"in every process ({fix}); that changes which samples each part gets, so it is left to you"
    )


def _report_training_without_optimizer(context, plan, code) -> None:
    """``.backward()`` but no ``torch.optim`` optimizer: say why nothing changed (one diagnostic, at the hand-written
    update of the parameters when there is one)."""
    analysis = context.analysis
    if not analysis.backward_calls or _unrecognised_loop(analysis) or any(
        site.scope.class_name not in (None, *analysis.model_classes) for site in analysis.backward_calls
    ):
        return  # AC001 or the helper-class diagnostic above says why
    why = (
        "nothing converted: there is nothing to prepare, and under several processes each one would train its own "
        "copy of the parameters; use an optimizer from `torch.optim` and accel-convert converts the script"
    )
    update = _hand_written_update(analysis)
    if update is not None:
        shown = context.code(update).strip()
        shown = f"`{shown}`" if len(shown) <= 60 and "\n" not in shown else "this statement"
        plan.diagnostics.append(context.diagnostic(code, update, f"{shown} updates the parameters by hand, without a `torch.optim` optimizer; {why}"))
        return
    site = analysis.backward_calls[0]
    receiver = context.code(site.node.func.value)
    message = f"`{receiver}.backward()` is called, but no `torch.optim` optimizer is created in this file; {why}"
    plan.diagnostics.append(context.diagnostic(code, site.node, message))


def _unrecognised_loop(analysis) -> bool:
    """``.backward()`` and some ``.step()`` in loops: the converter's AC001 "training loop not recognised" case."""
    steps = any(
        site.loops and isinstance(site.node.func, cst.Attribute) and site.node.func.attr.value == "step"
        for site in analysis.facts.calls
    )
    return steps and any(site.loops for site in analysis.backward_calls)


def _hand_written_update(analysis) -> cst.CSTNode | None:
    """The first statement that changes a tensor from its ``.grad``: ``w -= lr * w.grad``,
    ``p.data.add_(-lr * p.grad)``, ``w = w - lr * w.grad``."""
    found = []

    class _Finder(Walker):
        def visit_AugAssign(self, node: cst.AugAssign) -> None:
            if _reads_grad(node.value):
                found.append(node)

        def visit_Assign(self, node: cst.Assign) -> None:
            targets = {dotted_name(target.target) for target in node.targets} - {None}
            if _reads_grad(node.value) and targets & _names_in(node.value):
                found.append(node)

        def visit_Call(self, node: cst.Call) -> None:
            func = node.func
            in_place = isinstance(func, cst.Attribute) and func.attr.value.endswith("_") and func.attr.value != "zero_"
            if in_place and any(_reads_grad(arg.value) for arg in node.args):
                found.append(node)

    finder = _Finder()
    for statement in analysis.facts.module.body:
        finder.walk(statement)
        if found:
            return found[0]
    return None


def _reads_grad(node: cst.CSTNode) -> bool:
    found = []

    class _Finder(Walker):
        def visit_Attribute(self, attribute: cst.Attribute) -> None:
            if attribute.attr.value == "grad":
                found.append(attribute)

    _Finder().walk(node)
    return bool(found)


def _names_in(node: cst.CSTNode) -> set[str]:
    """Dotted names read in ``node`` (``p.data``, ``p``, ``w``)."""
    names = set()

    class _Finder(Walker):
        def visit_Attribute(self, attribute: cst.Attribute) -> None:
            key = dotted_name(attribute)
            if key is not None:
                names.add(key)

        def visit_Name(self, name: cst.Name) -> None:
            names.add(name.value)

    _Finder().walk(node)
    return names


def apex_amp(analysis) -> list:
    """An AC021 diagnostic when the script uses NVIDIA apex's AMP (``amp.initialize``, ``amp.scale_loss``): it must
    run before any wrapper and owns the backward pass, so the file is left as it is. Empty otherwise."""
    site = next((site for site in analysis.facts.calls if _apex_mixed_precision(analysis.qualify(site.node.func))), None)
    if site is None:
        return []
    name = analysis.code(site.node.func)
    if name.rsplit(".", 1)[-1] == "FP16_Optimizer":
        what = (
            f"`{name}` is NVIDIA apex's fp16 optimizer wrapper, which keeps fp32 master weights and runs its own "
            "scaled backward (`optimizer.backward(loss)`)"
        )
    else:
        what = f"`{name}` is NVIDIA apex's mixed precision, which must wrap the model before `accelerator.prepare` and runs its own backward pass"
    message = (
        f"{what}: nothing converted; replace it with `torch.amp` (`torch.autocast` and `torch.amp.GradScaler`, "
        "the plain optimizer and `loss.backward()`) first, then run accel-convert again, which converts that"
    )
    return [Pending(Diagnostic, UnconvertedPatterns.code, site.node, message, None)]


def _apex_mixed_precision(name: str | None) -> bool:
    """``apex.amp.*`` and apex's ``FP16_Optimizer`` (``apex.fp16_utils``, older ``apex.optimizers``)."""
    return bool(name) and (name.startswith("apex.amp.") or (name.startswith("apex.") and name.endswith(".FP16_Optimizer")))


def _is_optimizer_class(analysis, info) -> bool:
    return any(symbols.is_optimizer(analysis.qualify(base) or "") or analysis.qualify(base) == "torch.optim.Optimizer" for base in info.bases)


def _is_optimizer(analysis, scope, node: cst.BaseExpression) -> bool:
    if isinstance(node, cst.Call):
        return symbols.is_optimizer(analysis.qualify(node.func) or "")
    return analysis.role_of(scope, node) == OPTIMIZER
