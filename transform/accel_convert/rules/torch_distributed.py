"""AC016 torch-distributed."""

from __future__ import annotations

import libcst as cst

from accel_convert.analysis.imports import dotted_name
from accel_convert.analysis.roles import holds_model
from accel_convert.analysis.symbols import MODEL_WRAPPERS
from accel_convert.edits.plan import ReplaceWith
from accel_convert.rules.base import Rule

_REMOVED = frozenset({"torch.distributed.init_process_group", "torch.cuda.set_device"})
_PROPERTIES = {
    "torch.distributed.get_rank": "process_index",
    "torch.distributed.get_world_size": "num_processes",
}
_CALLS = {
    "torch.distributed.barrier": "wait_for_everyone()",
    "torch.distributed.destroy_process_group": "end_training()",
}
_REDUCTIONS = {None: "sum", "SUM": "sum", "AVG": "mean", "MAX": "max"}


class TorchDistributed(Rule):
    """Replace hand-written `torch.distributed` calls by the accelerator's.

    ## Why
    The accelerator sets up the process group itself (from the variables `accel launch` sets) and knows each
    process's rank and the number of processes; a second `init_process_group` fails, and `torch.cuda.set_device`
    with a rank read by hand fights the device the accelerator picked.

    ## What it does
    - `dist.init_process_group(...)` and `torch.cuda.set_device(...)` statements are removed (an `if` left
      empty goes too).
    - `dist.get_rank()` becomes `accelerator.process_index`, `dist.get_world_size()` `accelerator.num_processes`.
    - `dist.barrier()` becomes `accelerator.wait_for_everyone()`, `dist.destroy_process_group()`
      `accelerator.end_training()`.
    - `dist.all_reduce(total)` (in place, `op=ReduceOp.SUM`, `AVG` or `MAX`) becomes
      `total = accelerator.reduce(total, reduction="sum")` (`"mean"`, `"max"`).
    - `model.module` on a model, or on what held its hand-written wrapper (`self.model = DDP(model)`, which
      AC017 removes), becomes `accelerator.unwrap_model(model)`.

    Calls where the accelerator is not reachable, and reductions the accelerator does not have (`MIN`,
    `PRODUCT`, `async_op=True`), are left as they are, with a diagnostic. In a function that first checks that a
    process group exists (`if not dist.is_initialized(): return 0`, or a helper of the file that asks it, as
    detection codebases' `is_dist_avail_and_initialized()`), an unreachable call only gets a note: the accelerator
    creates the process group whenever there are several processes, so the call works as it is. So is a `model.module` the
    accelerator cannot reach: with one process the prepared model is the user's own module, which has no
    `.module`, so the diagnostic names the line to change by hand.

    **Unsafe** (in ruff's sense): `accelerator.end_training()` also waits for every process.

    ## Example
    ```python
    dist.init_process_group("nccl")
    rank = dist.get_rank()
    ...
    dist.all_reduce(correct)
    dist.barrier()
    if rank == 0:
        torch.save(model.module.state_dict(), "model.pt")
    dist.destroy_process_group()
    ```
    becomes
    ```python
    rank = accelerator.process_index
    ...
    correct = accelerator.reduce(correct, reduction="sum")
    accelerator.wait_for_everyone()
    if rank == 0:
        accelerator.save(accelerator.unwrap_model(model).state_dict(), "model.pt")
    accelerator.end_training()
    ```
    """

    code = "AC016"
    name = "torch-distributed"
    summary = "Replace hand-written `torch.distributed` calls by the accelerator's."
    unsafe = True

    def needs(self, decisions):
        analysis = decisions.analysis
        calls = [(site.scope, site.location) for site, qualified in _sites(analysis) if qualified not in _REMOVED]
        return calls + [(read.scope, read.location) for read in _module_reads(analysis)]

    def plan(self, context, plan):
        analysis = context.analysis
        guarded = _guarded_scopes(analysis)
        for site, qualified in _sites(analysis):
            call = site.node
            statement = site.statement
            if qualified in _REMOVED:
                if _alone(statement, call):
                    plan.statement(statement).remove = True
                    plan.changes.append(context.change(self.code, call, f"`{context.code(call.func)}` removed: the accelerator sets up the processes"))
                continue
            accelerator = context.access.expression(site.scope)
            if accelerator is None:
                message = f"`{context.code(call.func)}` left as is: `{site.scope.name}` cannot reach the accelerator"
                if site.scope in guarded:
                    message += (
                        "; it runs only once a process group exists (the function checks `is_initialized()` first), "
                        "and the accelerator creates that group, so it works as it is"
                    )
                    plan.diagnostics.append(context.note(self.code, call, message))
                else:
                    plan.diagnostics.append(context.diagnostic(self.code, call, message))
                continue
            if qualified in _PROPERTIES:
                replacement = f"{accelerator}.{_PROPERTIES[qualified]}"
            elif qualified in _CALLS:
                replacement = f"{accelerator}.{_CALLS[qualified]}"
            else:
                replacement = self._reduce(context, plan, site, accelerator)
                if replacement is None:
                    continue
                plan.statement(statement).replacement = cst.parse_statement(replacement + "\n")
                context.use(site.scope, site.location)
                plan.changes.append(context.change(self.code, call, f"`{context.code(call.func)}` -> `{accelerator}.reduce`"))
                continue
            plan.expression(call, ReplaceWith(replacement), statement)
            context.use(site.scope, site.location)
            plan.changes.append(context.change(self.code, call, f"`{context.code(call.func)}()` -> `{replacement}`"))
        self._unwrap(context, plan)

    def _reduce(self, context, plan, site, accelerator) -> str | None:
        call = site.node
        positional = [arg.value for arg in call.args if arg.keyword is None]
        op = next((arg.value for arg in call.args if arg.keyword is not None and arg.keyword.value == "op"), None)
        if op is None and len(positional) > 1:
            op = positional[1]
        extra = [arg for arg in call.args if arg.keyword is not None and arg.keyword.value != "op"]
        kind = op.attr.value if isinstance(op, cst.Attribute) else None if op is None else "?"
        assignable = bool(positional) and dotted_name(positional[0]) is not None
        if not assignable or extra or kind not in _REDUCTIONS or not _alone(site.statement, call):
            message = f"`{context.code(call)}` left as is: `accelerator.reduce` takes a tensor variable and sum, mean or max"
            plan.diagnostics.append(context.diagnostic(self.code, call, message))
            return None
        tensor = context.code(positional[0])
        return f'{tensor} = {accelerator}.reduce({tensor}, reduction="{_REDUCTIONS[kind]}")'

    def _unwrap(self, context, plan) -> None:
        for read in _module_reads(context.analysis):
            attribute = read.node
            model = context.code(attribute.value)
            accelerator = context.access.expression(read.scope)
            if accelerator is None:
                message = (
                    f"`{model}.module` left as is: `{read.scope.name}` cannot reach the accelerator to read "
                    f"`accelerator.unwrap_model({model})` instead; a prepared model run in one process has no `.module`"
                )
                plan.diagnostics.append(context.diagnostic(self.code, attribute, message))
                continue
            plan.expression(attribute, ReplaceWith(f"{accelerator}.unwrap_model({model})"), read.statement)
            context.use(read.scope, read.location)
            plan.changes.append(context.change(self.code, attribute, f"`{model}.module` -> `{accelerator}.unwrap_model({model})`"))


def _module_reads(analysis):
    """``model.module`` reads, on a model or on what holds its data-parallel wrapper (``self.model = DDP(model)``)."""
    for read in analysis.facts.attribute_reads:
        if read.node.attr.value == "module" and _holds_model(analysis, read.scope, read.node.value):
            yield read


def _holds_model(analysis, scope, node) -> bool:
    if holds_model(analysis, scope, node):
        return True
    key = dotted_name(node)
    binding = analysis.binding(scope, key) if key is not None else None
    for assignment in analysis.facts.assignments:
        value = analysis.strip(assignment.value, assignment.scope)
        if len(assignment.targets) != 1 or not isinstance(value, cst.Call) or analysis.qualify(value.func) not in MODEL_WRAPPERS:
            continue
        target = dotted_name(assignment.targets[0])
        if target is not None and analysis.binding(assignment.scope, target) == binding:
            return True
    return False


def _alone(statement, call) -> bool:
    """The call is the whole statement (``dist.barrier()`` on its own line)."""
    return (
        isinstance(statement, cst.SimpleStatementLine)
        and len(statement.body) == 1
        and isinstance(statement.body[0], cst.Expr)
        and statement.body[0].value is call
    )


def _guarded_scopes(analysis) -> set:
    """Functions that ask whether a process group exists before their ``torch.distributed`` calls: they call
    ``dist.is_initialized()`` themselves, or a function of the file that does (``is_dist_avail_and_initialized()``)."""
    checking = {
        site.scope
        for site in analysis.facts.calls
        if site.scope.parent is not None and analysis.qualify(site.node.func) == "torch.distributed.is_initialized"
    }
    names = {scope.name for scope in checking if scope.class_name is None}
    return checking | {
        site.scope for site in analysis.facts.calls if isinstance(site.node.func, cst.Name) and site.node.func.value in names
    }


def _sites(analysis):
    known = _REMOVED | set(_PROPERTIES) | set(_CALLS) | {"torch.distributed.all_reduce"}
    for site in analysis.facts.calls:
        qualified = analysis.qualify(site.node.func)
        if qualified in known:
            yield site, qualified
