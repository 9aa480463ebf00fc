"""AC010 gather-for-metrics."""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from accel_convert.edits.plan import ReplaceWith
from accel_convert.rules.base import Rule
from accel_convert.rules.gather_for_metrics.comprehension_evaluation import comprehension_evaluations
from accel_convert.rules.gather_for_metrics.evaluation import evaluation_loops, summed_total
from accel_convert.rules.gather_for_metrics.metric_flow import names_read


@dataclass(frozen=True)
class GatherInPlace:
    """``model(x)`` -> ``<accelerator>.gather_for_metrics(model(x))``."""

    accelerator: str

    def apply(self, node: cst.BaseExpression) -> cst.BaseExpression:
        func = cst.parse_expression(f"{self.accelerator}.gather_for_metrics")
        call = cst.Call(func, [cst.Arg(node.with_changes(lpar=[], rpar=[]))])
        return call.with_changes(lpar=node.lpar, rpar=node.rpar)


@dataclass(eq=False)
class NameOutput:
    """Replace a model output in a comprehension by a name, keeping the rebuilt output for the gather clause."""

    name: str
    output: cst.BaseExpression | None = None

    def apply(self, node: cst.BaseExpression) -> cst.BaseExpression:
        self.output = node.with_changes(lpar=[], rpar=[])
        return cst.Name(self.name, lpar=node.lpar, rpar=node.rpar)


@dataclass(frozen=True)
class GatherClause:
    """``... for x, y in loader`` -> ``... for x, y in loader for out, y in [<acc>.gather_for_metrics((<out>, y))]``."""

    accelerator: str
    outputs: tuple[NameOutput, ...]
    batch_names: tuple[str, ...]

    def apply(self, node):
        empty = cst.Module([])
        values = [empty.code_for_node(output.output) for output in self.outputs] + list(self.batch_names)
        names = [output.name for output in self.outputs] + list(self.batch_names)
        argument = f"({', '.join(values)})" if len(values) > 1 else values[0]
        clause = cst.parse_expression(
            f"[_ for {', '.join(names)} in [{self.accelerator}.gather_for_metrics({argument})]]"
        ).for_in
        return node.with_changes(for_in=node.for_in.with_changes(inner_for_in=clause))


class GatherForMetrics(Rule):
    """Gather the model's outputs and the targets in evaluation loops, so metrics cover the whole evaluation set.

    ## Why
    A prepared data loader gives each process its own share of the batches. Metrics summed in an evaluation loop
    (correct predictions, loss sums, sample counts) would cover that share only, and differ with the number of
    processes. `accelerator.gather_for_metrics` collects a value from every process and drops the samples the
    loader repeated to give every process the same number of batches. A gathered value holds one batch of every
    process, so the gather fits only code that works on any number of samples: the rule finds out which code
    after the forward pass computes the metrics and which does something else with this process's batch.

    ## What it does
    In a loop over a prepared data loader that runs no `backward()` and no `step()` and runs without gradients
    (inside `with torch.no_grad()` or `torch.inference_mode()`, in a function decorated with one of them, or after
    `model.eval()`) or whose loader no training loop iterates, right after the statement that assigns the model's
    output (`out = model(x)`, also `model(x).logits`, `model(x)[0]`), it adds

    ```python
    out, y = accelerator.gather_for_metrics((out, y))
    ```

    naming the output and every batch value (`y`, `batch`, `labels = batch["labels"]`, both names of
    `inputs, targets = batch[0], batch[1]`) that the rest of the loop body reads. Everything computed after that
    line sees the full batch of every process, once.

    ### Metric code and other code
    A *metric statement* adds to something that outlives the loop: `total += ...` (or `total = total + ...`) on a
    name the loop does not otherwise assign, or `.append(...)`, `.extend(...)`, `.update(...)`, `.add_batch(...)`
    on such a name. The statements whose results it reads (`loss = criterion(out, y)`, a `for` or `if` around
    it) compute the metric too. Any other code after the forward pass that reads the output or a batch value,
    such as saving the first batch's reconstructions with `recon.view(args.batch_size, 1, 28, 28)`, needs this
    process's batch: under two processes a gathered batch has twice the rows and that `view` fails. In that case
    the gather binds new names that only the metric code reads, and the other code keeps the local tensors, so
    it does on each process what it did with one (rather than leaving the whole loop per process, which would
    lose the metric, or guessing which reshapes depend on the batch size):

    ```python
    recon, mu = model(data)
    all_recon, all_mu, all_data = accelerator.gather_for_metrics((recon, mu, data))
    test_loss += loss_function(all_recon, all_data, all_mu).item()
    if i == 0:
        save_image(recon.view(args.batch_size, 1, 28, 28)[:8], "reconstruction.png")
    ```

    ### Loss sums
    The loss is computed *after* the gather, on the gathered outputs and targets, so one scheme works for every
    metric: `loss_sum += criterion(out, y).item() * y.size(0)` sums per-sample losses over the whole set, and
    `count += y.size(0)` counts every sample once. A mean of per-batch means (`total += loss.item()` then
    `/ len(loader)`) is not a per-sample mean: with N processes each gathered batch holds N batches and the
    last one is shorter, so that number changes with N. Such a sum of a batch-mean loss (a `torch.nn` loss or
    `torch.nn.functional` loss without `reduction=`; `total += ...` or `total = total + ...`, also with the model
    called inline, `total += F.mse_loss(model(x), y).item()`) gets a diagnostic: weight each batch by its size, or
    use a loss with `reduction="sum"`, and divide by the number of samples.

    ### Loops over a fixed number of samples
    A loop in the metric code that walks each batch sample by sample with a bound fixed to the batch size (`for i
    in range(batch_size): label = labels[i]; class_correct[label] += c[i].item()`, the per-class accuracy of the
    classifier tutorials) would count only the first `batch_size` samples of a gathered batch, or index past the
    end of a short last batch. Its bound becomes the length of the gathered value it indexes, which is the batch
    size itself with one process:

    ```python
    for i in range(len(labels)):
    ```

    A bound counts as the batch size when it is the `batch_size` given to the loop's DataLoader (the same code:
    `4`, `args.batch_size`), or a name that says so (`batch_size`, `bs`, `args.test_batch_size`); a loop over
    `range(num_classes)` is left alone. `range(start, batch_size)` with another start, or with a step, cannot be
    rewritten: the loop is left as it is, with a diagnostic.

    When the output is used inline (`correct += (model(x).argmax(1) == y).sum().item()`), it is first
    assigned to `outputs`, gathered, and the statement reads `outputs` instead.

    ### Metrics the script combines itself
    A loop whose function combines values across processes itself, inside or after the loop, is left as it is:
    a `torch.distributed` collective (`dist.all_reduce(correct)`), or a function or method of the file that calls
    one (a metric logger's `logger.synchronize_between_processes()`, as detection codebases write it). Its metrics
    already cover every process's share of the prepared loader, as they covered every `DistributedSampler` share in
    the original's distributed run; gathering as well would count each sample N times. (AC016 turns the
    collective into `accelerator.reduce` where the function can reach the accelerator.)

    ### Comprehensions
    A comprehension or generator expression over a prepared loader (`sum(... for x, y in loader)`,
    `[model(x) for x, _ in loader]`, a dict or set comprehension) runs once per batch of this process, like a loop,
    and is an evaluation under the same conditions. Its element is evaluated exactly once per batch, so a gather
    placed there runs equally often on every process. When the element reads one value to gather (a model
    output, or a batch value read once), it is wrapped where it stands:

    ```python
    preds = torch.cat([accelerator.gather_for_metrics(model(x).argmax(1)) for x, _ in loader])
    labels = torch.cat([accelerator.gather_for_metrics(y) for _, y in loader])
    ```

    A comprehension without a model call is gathered too when it iterates the loader of a gathered comprehension
    in the same function (the targets collected beside the predictions). When the element reads
    the model output and batch values, one gather per batch binds them all in an extra `for` clause, so they stay
    paired:

    ```python
    hits = sum((outputs == y).sum().item() for x, y in loader
               for outputs, y in [accelerator.gather_for_metrics((model(x).argmax(1), y))])
    ```

    A comprehension whose element is a batch-mean loss (`[criterion(model(x), y).item() for x, y in loader]`) is
    gathered and gets the diagnostic of loss sums below. A comprehension is left as it is, with a diagnostic, when
    it filters batches with `if` (processes would gather a different number of times), has more than one `for`
    clause, calls the model under a condition (`a if c else b`, `and`/`or`, a lambda, an inner comprehension),
    reads the index of `enumerate(loader)`, indexes or reshapes the output with a batch value, or assigns with
    `:=`. Write such an evaluation as a `for` loop. One that calls `backward()` or `step()` in its statement, or
    that runs with gradients over a training loader or in a function that calls `backward()` outside loops over
    batches (`loss = sum(...); loss.backward()`), trains rather than evaluates: it is not touched.

    ### Loops left as they are
    Gathering these would crash or give numbers that change with the number of processes, so the loop keeps its
    per-process metrics and a diagnostic says why:

    - a value that goes through `pack_padded_sequence` / `pad_packed_sequence` in the metric code: it is padded to
      the longest sequence of its own process's batch, so processes hold different shapes (pad it with
      `accelerator.pad_across_processes` before gathering);
    - an output of the model used as an index (`allcaps[sort_ind]`): positions within one process's batch do not
      address the gathered batch (gather the indexed value instead);
    - a metric that adds up a nonlinear function of a batch-mean loss (`psnr = 10 * log10(1 / mse.item())`,
      `math.exp(loss.item())`): it depends on which samples share a batch;
    - a value that feeds the metrics and is also used by other code, a gathered name reassigned after the
      forward pass while other code reads it, no metric statement at all while other code reads the batch, or a
      metric statement that would read new names written on the line of its `if` (`if i: total += ...`);
    - the model called more than once without assigning its output, or a value computed from the batch before
      the forward pass (`n = y.size(0)`) read after it.

    **Unsafe** (in ruff's sense): the metric code after the forward pass now runs on N batches at once.

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
    guarded_by = ("gather-unprepared",)
    unsafe = True

    def needs(self, decisions):
        analysis, prepared = decisions.analysis, decisions.prepared
        loops = [(found.loop.scope, found.loop.location) for found in evaluation_loops(analysis, prepared) if found.problem is None]
        return loops + [(found.scope, found.location) for found in comprehension_evaluations(analysis, prepared) if found.problem is None]

    def plan(self, context, plan):
        self._plan_loops(context, plan)
        self._plan_comprehensions(context, plan)

    def _plan_comprehensions(self, context, plan):
        for found in comprehension_evaluations(context.analysis, context.decisions.prepared):
            accelerator = context.access.expression(found.scope)
            if found.problem is None and accelerator is None:
                found.problem, found.problem_node = f"is in `{found.scope.name}`, which cannot reach the accelerator", found.node
            if found.problem is not None:
                message = f"evaluation loop not gathered: the comprehension {found.problem}; its metrics cover one process's batches"
                plan.diagnostics.append(context.diagnostic(self.code, found.problem_node, message, found.statement))
                continue
            if found.in_place:
                value = found.outputs[0] if found.outputs else _batch_read(found.node, found.batch_names[0])
                plan.expression(value, GatherInPlace(accelerator), found.statement)
            else:
                named = tuple(NameOutput(name) for name in found.output_names)
                for output, edit in zip(found.outputs, named):
                    plan.expression(output, edit, found.statement)
                plan.expression(found.node, GatherClause(accelerator, named, tuple(found.batch_names)), found.statement)
            context.use(found.scope, found.location)
            gathered = [context.code(output) for output in found.outputs] + found.batch_names
            plan.changes.append(
                context.change(self.code, found.node, f"gather {', '.join(gathered)} in the comprehension for the metrics", found.statement)
            )
            if found.mean_loss:
                message = (
                    "the comprehension collects per-batch mean losses: a gathered batch holds one batch of every "
                    "process, so a sum or mean of them changes with the number of processes; weight each batch by "
                    "its size (or use reduction=\"sum\") and divide by the number of samples"
                )
                plan.diagnostics.append(context.diagnostic(self.code, found.node, message, found.statement))

    def _plan_loops(self, context, plan):
        for found in evaluation_loops(context.analysis, context.decisions.prepared):
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
            elif found.inline_output not in found.gathered:  # the inline output feeds no metric: it stays inline
                edit.before.append(gather)
            else:
                forward = context.code(found.inline.with_changes(lpar=[], rpar=[]))
                edit.before += [cst.parse_statement(f"{found.inline_output} = {forward}\n"), gather]
                plan.expression(found.inline, ReplaceWith(found.inline_as), found.statement)
            for name, statement in found.renamed:
                plan.expression(name, ReplaceWith(found.gathered_as[found.gathered.index(name.value)]), statement)
            for fixed in found.resized:
                plan.expression(fixed.bound, ReplaceWith(fixed.replacement), fixed.statement)
                message = (
                    f"`{context.code(fixed.bound)}` -> `{fixed.replacement}`: a gathered batch holds the samples of "
                    "every process, the last one fewer"
                )
                plan.changes.append(context.change(self.code, fixed.bound, message, fixed.statement))
            context.use(scope, found.location)
            plan.changes.append(context.change(self.code, found.statement, f"gather {names} for the metrics"))
            for total in found.mean_sums:
                message = (
                    f"`{context.code(summed_total(total))}` adds up per-batch mean losses: a gathered batch holds one batch of "
                    "every process, so this mean of batch means changes with the number of processes; weight each "
                    "batch by its size (or use reduction=\"sum\") and divide by the number of samples"
                )
                plan.diagnostics.append(context.diagnostic(self.code, total, message))


def _batch_read(node: cst.CSTNode, name: str) -> cst.Name:
    """The one read of ``name`` in a comprehension's element."""
    elements = [node.key, node.value] if isinstance(node, cst.DictComp) else [node.elt]
    reads = [read for element in elements for read in names_read(element) if read.value == name]
    return reads[0]
