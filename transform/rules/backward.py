"""AC004 backward."""

from __future__ import annotations

from accel_convert.plan import BackwardThrough
from accel_convert.rules.base import Rule


class Backward(Rule):
    """Call `accelerator.backward(loss)` instead of `loss.backward()`.

    ## Why
    The accelerator scales the loss for mixed precision and gradient accumulation, and lets distributed backends
    (DeepSpeed, FSDP) run their own backward pass. `loss.backward()` bypasses all of that.

    ## What it does
    Every `<expression>.backward(...)` call becomes `accelerator.backward(<expression>, ...)`; keyword arguments
    such as `retain_graph=True` are kept. Calls on imported modules (`torch.autograd.backward(...)`) are left alone.
    A helper function that cannot see the accelerator gets it as a parameter (see AC001).

    ## Example
    ```python
    loss = criterion(model(data), target)
    loss.backward()
    (loss_a + loss_b).backward(retain_graph=True)
    ```
    becomes
    ```python
    loss = criterion(model(data), target)
    accelerator.backward(loss)
    accelerator.backward(loss_a + loss_b, retain_graph=True)
    ```
    """

    code = "AC004"
    name = "backward"
    summary = "Call `accelerator.backward(loss)` instead of `loss.backward()`."

    def needs(self, analysis):
        return [site.scope for site in analysis.backward_calls]

    def plan(self, context, plan):
        for site in context.analysis.backward_calls:
            accelerator = context.access.expression(site.scope)
            receiver = context.code(site.node.func.value.with_changes(lpar=[], rpar=[]))
            if accelerator is None:
                plan.diagnostics.append(
                    context.diagnostic(
                        self.code,
                        site.node,
                        f"`{context.code(site.node.func.value)}.backward()` left as is: `{site.scope.name}` cannot reach the accelerator",
                    )
                )
                continue
            plan.expression(site.node, BackwardThrough(accelerator), site.statement)
            context.use(site.scope, site.location)
            plan.changes.append(
                context.change(self.code, site.node, f"`{context.code(site.node.func.value)}.backward()` -> `{accelerator}.backward({receiver})`")
            )
