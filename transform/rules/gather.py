"""AC010 gather-for-metrics."""

from __future__ import annotations

import libcst as cst

from accel_convert.evaluation import evaluation_loops
from accel_convert.plan import ReplaceWith
from accel_convert.rules.base import Rule


class GatherForMetrics(Rule):
    """Gather the model's outputs and the targets in evaluation loops, so metrics cover the whole evaluation set.

    ## Why
    A prepared data loader gives each process its own share of the batches. Metrics summed in an evaluation loop
    (correct predictions, loss sums, sample counts) would cover that share only, and differ with the number of
    processes. `accelerator.gather_for_metrics` collects a value from every process and drops the samples the
    loader repeated to give every process the same number of batches.

    ## What it does
    In a loop over a prepared data loader that runs no `backward()` and no `step()` and runs without gradients
    (inside `with torch.no_grad()` or `torch.inference_mode()`, in a function decorated with one of them, or after
    `model.eval()`) or whose loader no training loop iterates, right after the statement that assigns the model's
    output (`out = model(x)`, also `model(x).logits`, `model(x)[0]`), it adds

    ```python
    out, y = accelerator.gather_for_metrics((out, y))
    ```

    naming the output and every batch value (`y`, `batch`, `labels = batch["labels"]`) that the rest of the loop
    body reads. Everything computed after that line sees the full batch of every process, once.

    ### Loss sums
    The loss is computed *after* the gather, on the gathered outputs and targets, so one scheme works for every
    metric: `loss_sum += criterion(out, y).item() * y.size(0)` sums per-sample losses over the whole set, and
    `count += y.size(0)` counts every sample once. A mean of per-batch means (`total += loss.item()` then
    `/ len(loader)`) is not a per-sample mean: with N processes each gathered batch holds N batches and the
    last one is shorter, so that number changes with N. Such a sum of a batch-mean loss (a `torch.nn` loss or
    `torch.nn.functional` loss without `reduction=`) gets a diagnostic: weight each batch by its size, or use
    a loss with `reduction="sum"`, and divide by the number of samples.

    When the output is used inline (`correct += (model(x).argmax(1) == y).sum().item()`), it is first
    assigned to `outputs`, gathered, and the statement reads `outputs` instead. The loop is left as it is, with a
    diagnostic, when the model is called more than once without assigning its output, or when a value computed
    from the batch before the forward pass (`n = y.size(0)`) is read after it.

    **Unsafe** (in ruff's sense): the body of the loop after the forward pass now runs on N batches at once.

    ## Example
    ```python
    model.eval()
    with torch.no_grad():
        for x, y in test_loader:
            out = model(x)
            loss_sum += criterion(out, y).item() * y.size(0)
            correct += (out.argmax(dim=1) == y).sum().item()
    ```
    becomes
    ```python
    model.eval()
    with torch.no_grad():
        for x, y in test_loader:
            out = model(x)
            out, y = accelerator.gather_for_metrics((out, y))
            loss_sum += criterion(out, y).item() * y.size(0)
            correct += (out.argmax(dim=1) == y).sum().item()
    ```
    """

    code = "AC010"
    name = "gather-for-metrics"
    summary = "Gather the model's outputs and the targets in evaluation loops, so metrics cover the whole evaluation set."
    unsafe = True

    def needs(self, analysis):
        if analysis.anchor is None:
            return []
        return [found.loop.scope for found in evaluation_loops(analysis, analysis.anchor.scope) if found.problem is None]

    def plan(self, context, plan):
        for found in evaluation_loops(context.analysis, context.access.owner):
            scope = found.loop.scope
            accelerator = context.access.expression(scope)
            if found.problem is None and accelerator is None:
                found.problem, found.problem_node = f"`{scope.name}` cannot reach the accelerator", found.statement
            if found.problem is not None:
                message = f"evaluation loop not gathered: {found.problem}; its metrics cover one process's batches"
                plan.diagnostics.append(context.diagnostic(self.code, found.problem_node, message))
                continue
            if not found.gathered:
                continue
            names = ", ".join(found.gathered)
            argument = f"({names})" if len(found.gathered) > 1 else names
            bound = ", ".join(found.gathered_as)
            gather = cst.parse_statement(f"{bound} = {accelerator}.gather_for_metrics({argument})\n")
            edit = plan.statement(found.statement)
            if found.inline is None:
                edit.after.append(gather)
            else:
                forward = context.code(found.inline.with_changes(lpar=[], rpar=[]))
                edit.before += [cst.parse_statement(f"{found.gathered[0]} = {forward}\n"), gather]
                plan.expression(found.inline, ReplaceWith(found.inline_as), found.statement)
            for name, statement in found.renamed:
                plan.expression(name, ReplaceWith(found.gathered_as[found.gathered.index(name.value)]), statement)
            context.use(scope, found.location)
            plan.changes.append(context.change(self.code, found.statement, f"gather {names} for the metrics"))
            for total in found.mean_sums:
                message = (
                    f"`{context.code(total.target)}` adds up per-batch mean losses: a gathered batch holds one batch of "
                    "every process, so this mean of batch means changes with the number of processes; weight each "
                    "batch by its size (or use reduction=\"sum\") and divide by the number of samples"
                )
                plan.diagnostics.append(context.diagnostic(self.code, total, message))
