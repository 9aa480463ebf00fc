"""AC021 unconverted-patterns."""

from __future__ import annotations

import libcst as cst

from accel_convert import symbols
from accel_convert.analysis import OPTIMIZER
from accel_convert.rules.base import Rule


class UnconvertedPatterns(Rule):
    """Report training code hidden in helper classes, which the converter leaves as it is.

    ## Why
    The converter follows models, optimizers and losses through plain functions. Code that wraps them in an object
    of the script's own making can hide a step or a backward pass from it: the converted script then runs, but
    does not do what `accelerate` would do there.

    ## What it does
    Nothing is rewritten; a diagnostic names each of these shapes:

    - an **optimizer wrapper**: a class of the file with a `step` method (not an `nn.Module`) that is given an
      optimizer, such as a Lookahead or warm-up wrapper. `accelerator.prepare` must get the inner optimizer and
      the wrapper must wrap the prepared one; its own `step()` is not adapted to gradient accumulation.
    - a **backward pass in a helper object**, when no training run was recognised: `.backward()` called in a
      method of a class that is not an `nn.Module`. The helper must use the prepared model and optimizer and call
      `accelerator.backward(loss)`: give it the accelerator. (Where a training run is recognised, AC004 converts
      such a call or says why not.)

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
    summary = "Report training code hidden in helper classes, which the converter leaves as it is."

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
            return  # a training run was found: AC004 handles each backward call
        for site in analysis.backward_calls:
            owner = site.scope.class_name
            if owner is None or owner in analysis.model_classes:
                continue
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


def _is_optimizer_class(analysis, info) -> bool:
    return any(symbols.is_optimizer(analysis.qualify(base) or "") or analysis.qualify(base) == "torch.optim.Optimizer" for base in info.bases)


def _is_optimizer(analysis, scope, node: cst.BaseExpression) -> bool:
    if isinstance(node, cst.Call):
        return symbols.is_optimizer(analysis.qualify(node.func) or "")
    return analysis.role_of(scope, node) == OPTIMIZER
