"""AC011 print."""

from __future__ import annotations

from accel_convert.edits.plan import ReplaceWith
from accel_convert.rules.base import Rule


class Print(Rule):
    """Print through `accelerator.print(...)`, which prints once per machine, not once per process.

    ## Why
    Under `accel launch --num-processes N` every process runs the whole script: a plain `print` shows every line
    N times, interleaved. `accelerator.print` prints on the local main process only, with the same arguments.

    ## What it does
    A call of the built-in `print` (not a local function or an import of that name) becomes `accelerator.print`
    with the same arguments (`sep=`, `end=`, `file=`, `flush=` included), where the accelerator exists when the
    line runs: after it is created in the function that owns the training run, in functions nested in it, in
    helpers that receive the accelerator as a parameter, in methods of classes that receive it as
    `self.accelerator` (AC001), and anywhere in a flat script after its creation.
    Other prints are left as they are.

    With several processes, what a process prints is its own value: a metric computed from its share of the
    data is printed by the main process only. Evaluation metrics are gathered first (AC010).

    ## Example
    ```python
    for epoch in range(epochs):
        ...
        print(f"epoch {epoch} loss {loss.item():.6f}")
    ```
    becomes
    ```python
    for epoch in range(epochs):
        ...
        accelerator.print(f"epoch {epoch} loss {loss.item():.6f}")
    ```
    """

    code = "AC011"
    name = "print"
    summary = "Print through `accelerator.print(...)`, which prints once per machine, not once per process."

    def plan(self, context, plan):
        analysis = context.analysis
        if "print" in analysis.imports.names or any("print" in scope.assigned for scope in analysis.facts.scopes):
            return
        for site in analysis.facts.calls_of("print"):
            func = site.node.func
            accelerator = context.access.reachable(site.scope, site.location)
            if accelerator is None:
                continue
            plan.expression(func, ReplaceWith(f"{accelerator}.print"), site.statement)
            context.use(site.scope, site.location)
            plan.changes.append(context.change(self.code, site.node, f"`print` -> `{accelerator}.print`"))
