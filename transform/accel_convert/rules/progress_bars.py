"""AC018 progress-bars."""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from accel_convert.edits.plan import AppendArgument
from accel_convert.rules.base import Rule

_BARS = frozenset({"tqdm.tqdm", "tqdm.auto.tqdm", "tqdm.notebook.tqdm", "tqdm.trange", "tqdm.auto.trange"})


class ProgressBars(Rule):
    """Show `tqdm` progress bars on one process per machine: `disable=not accelerator.is_local_main_process`.

    ## Why
    Every process runs the whole script; N progress bars redrawing the same terminal line make it unreadable.

    ## What it does
    A `tqdm(...)` or `trange(...)` call (from `tqdm`, `tqdm.auto`, `tqdm.notebook`, however imported) without a
    `disable=` argument gets `disable=not accelerator.is_local_main_process`, where the accelerator exists when
    the line runs (as for AC011). The bar still wraps its iterable on every process, so the loop is unchanged;
    only its drawing is switched off on the other processes.

    ## Example
    ```python
    for x, y in tqdm(train_loader, desc=f"epoch {epoch}"):
    ```
    becomes
    ```python
    for x, y in tqdm(train_loader, desc=f"epoch {epoch}", disable=not accelerator.is_local_main_process):
    ```
    """

    code = "AC018"
    name = "progress-bars"
    summary = "Show `tqdm` progress bars on one process per machine: `disable=not accelerator.is_local_main_process`."

    def plan(self, context, plan):
        analysis = context.analysis
        for site in analysis.facts.calls:
            call = site.node
            if analysis.qualify(call.func) not in _BARS:
                continue
            if any(arg.keyword is not None and arg.keyword.value == "disable" for arg in call.args):
                continue
            if any(arg.star == "**" for arg in call.args):
                continue
            accelerator = context.access.reachable(site.scope, site.location)
            if accelerator is None:
                continue
            plan.expression(call, _Disable(accelerator), site.statement)
            context.use(site.scope, site.location)
            plan.changes.append(context.change(self.code, call, "progress bar shown on the local main process only"))


@dataclass(frozen=True)
class _Disable:
    """Append ``disable=not <accelerator>.is_local_main_process`` to a call."""

    accelerator: str

    def apply(self, call: cst.Call) -> cst.Call:
        call = AppendArgument("disable", True).apply(call)
        last = call.args[-1].with_changes(value=cst.parse_expression(f"not {self.accelerator}.is_local_main_process"))
        return call.with_changes(args=[*call.args[:-1], last])
