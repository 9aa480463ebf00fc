"""AC012 save."""

from __future__ import annotations

import libcst as cst

from accel_convert.analysis.everywhere import statement_order, where
from accel_convert.analysis.imports import dotted_name
from accel_convert.analysis.roles import holds_model
from accel_convert.edits.plan import ReplaceWith
from accel_convert.rules.base import Rule

_FILE_OPENERS = frozenset({"open", "io.BytesIO", "io.open", "builtins.open"})


class Save(Rule):
    """Save with `accelerator.save(...)` and read the model's weights through `accelerator.unwrap_model(model)`.

    ## Why
    With several processes every process would write the same file at the same time; `accelerator.save` writes it
    once, from the main process, atomically (a crash never leaves half a file). A prepared model may be wrapped for
    data-parallel training, and the wrapper's `state_dict()` names every weight `module.<name>`: such a file does
    not load into a plain model. `accelerator.unwrap_model(model)` is the user's own module.

    ## What it does
    - `torch.save(obj, path)` becomes `accelerator.save(obj, path)`, where the accelerator exists when the line
      runs (as for AC011). A save into an open file or a buffer (`with open(p, "wb") as f: torch.save(obj, f)`,
      `io.BytesIO()`) is left as it is: `accelerator.save` takes a path.
    - `torch.save(model, path)`, which pickles the whole module, saves `accelerator.unwrap_model(model)`: under
      several processes the prepared model is a `DistributedDataParallel` wrapper, which a script that later
      `torch.load`s the file without a process group cannot unpickle.
    - `model.state_dict()` and `model.load_state_dict(...)` on a model (or on a name assigned from one, such as
      `self.model = model.to(gpu_id)` in a trainer class) become
      `accelerator.unwrap_model(model).state_dict()` / `.load_state_dict(...)`, in checkpoint dictionaries too, so
      the saved keys and the keys loaded back are those of the plain model, with any number of processes.
    - A `GradScaler`'s `state_dict()` / `load_state_dict(...)` in the same checkpoint goes to
      `accelerator.scaler` (AC014).
    - A `torch.load` of the same path (the same expression) after such a save, later in the same function or
      after a call of the function that saves, gets `accelerator.wait_for_everyone()` before its statement unless a
      wait or a barrier is already between them: the main process alone writes the file, and the others would
      read it before it exists, or an older one. Where only the main process loads it (`if rank == 0:`, also
      through the calls that lead to a helper) nothing is added. Where the load may run on some processes only
      (under a `while`, or an `if` on anything but the parsed command line, `range` counters and constants) a
      wait would hang: it gets a diagnostic instead.

    ## Example
    ```python
    torch.save(model.state_dict(), "model.pt")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch}, path)
    ```
    becomes
    ```python
    accelerator.save(accelerator.unwrap_model(model).state_dict(), "model.pt")
    accelerator.save({"model": accelerator.unwrap_model(model).state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch}, path)
    ```
    """

    code = "AC012"
    name = "save"
    summary = "Save with `accelerator.save(...)` and read the model's weights through `accelerator.unwrap_model(model)`."

    def plan(self, context, plan):
        analysis = context.analysis
        saves = []
        for site in analysis.facts.calls:
            call = site.node
            accelerator = context.access.reachable(site.scope, site.location)
            if accelerator is None:
                continue
            func = call.func
            if analysis.qualify(func) == "torch.save" and len(call.args) >= 2 and not self._to_file_object(context, site):
                plan.expression(func, ReplaceWith(f"{accelerator}.save"), site.statement)
                plan.changes.append(context.change(self.code, call, f"`torch.save` -> `{accelerator}.save`"))
                saved = call.args[0].value
                if holds_model(analysis, site.scope, saved):  # torch.save(model, path): the whole module, pickled
                    model = context.code(saved)
                    plan.expression(saved, ReplaceWith(f"{accelerator}.unwrap_model({model})"), site.statement)
                    plan.changes.append(context.change(self.code, saved, f"`{model}` saved through `{accelerator}.unwrap_model`"))
                saves.append(site)
            elif isinstance(func, cst.Attribute) and func.attr.value in ("state_dict", "load_state_dict"):
                if not holds_model(analysis, site.scope, func.value):
                    continue
                model = context.code(func.value)
                plan.expression(func.value, ReplaceWith(f"{accelerator}.unwrap_model({model})"), site.statement)
                plan.changes.append(
                    context.change(self.code, call, f"`{model}.{func.attr.value}` through `{accelerator}.unwrap_model`")
                )
            else:
                continue
            context.use(site.scope, site.location)
        _wait_before_loads(self.code, context, plan, saves, context.access.reachable)

    def _to_file_object(self, context, site) -> bool:
        """True when ``torch.save``'s target is an open file or a buffer, not a path."""
        analysis = context.analysis
        target = next((a.value for a in site.node.args[1:] if a.keyword is None or a.keyword.value == "f"), None)
        if isinstance(target, cst.Call):
            return analysis.qualify(target.func) in _FILE_OPENERS or dotted_name(target.func) == "open"
        key = dotted_name(target) if target is not None else None
        if key is None:
            return False
        for block, index in site.location:
            statement = analysis.facts.statement_at(block, index) if index >= 0 else None
            if isinstance(statement, cst.With) and any(
                item.asname is not None and dotted_name(item.asname.name) == key for item in statement.items
            ):
                return True
        binding = analysis.binding(site.scope, key)
        for assignment in analysis.facts.assignments:
            value = assignment.value
            if len(assignment.targets) == 1 and dotted_name(assignment.targets[0]) == key and isinstance(value, cst.Call):
                if analysis.binding(assignment.scope, key) == binding and (
                    analysis.qualify(value.func) in _FILE_OPENERS or dotted_name(value.func) == "open"
                ):
                    return True
        return False


def _wait_before_loads(code, context, plan, saves, reachable_at) -> None:
    """``accelerator.wait_for_everyone()`` before a ``torch.load`` of a file a converted save wrote earlier: the
    main process alone writes it, the others would read it before it is there (or an older one). ``reachable_at``:
    (scope, location) -> the accelerator's expression there, or None."""
    if not saves:
        return
    analysis = context.analysis
    facts = analysis.facts
    order = statement_order(facts)
    written = [(site, _path_code(context, site.node, 1)) for site in saves]
    for site in facts.calls:
        if analysis.qualify(site.node.func) != "torch.load":
            continue
        path = _path_code(context, site.node, 0)
        statement = facts.statement_at(*site.location[-1]) if site.location else None
        if path is None or statement is None:
            continue
        after = [
            start
            for save, saved in written
            if saved == path and (start := _written_before(analysis, order, save, site)) is not None
        ]
        if not after or _waits_between(analysis, order, site, min(after), order[id(statement)]):
            continue
        place = where(analysis, site.scope, site.location)
        if place.main_only:
            continue  # the main process reads what it wrote itself
        accelerator = reachable_at(site.scope, site.location)
        if not place.everywhere or accelerator is None:
            if not place.everywhere and place.branch is not None:
                kind = "while" if isinstance(place.branch, cst.While) else "if"
                why = f"`{kind} {context.code(place.branch.test)}:` may send the processes different ways"
            elif not place.everywhere:
                why = "the calls that lead to it are too deep to follow"
            else:
                why = f"`{site.scope.name}` cannot reach the accelerator"
            message = (
                f"`torch.load({path})` reads the file `accelerator.save` writes from the main process only, with no "
                f"`accelerator.wait_for_everyone()` between them, so the other processes may read it before it is "
                f"written; a wait cannot go here ({why}): call `accelerator.wait_for_everyone()` where every process "
                "runs it, after the save and before the load"
            )
            plan.diagnostics.append(context.diagnostic(code, site.node, message, site.statement))
            continue
        plan.statement(statement).before.append(cst.parse_statement(f"{accelerator}.wait_for_everyone()\n"))
        context.use(site.scope, site.location)
        plan.changes.append(
            context.change(code, site.node, f"`{accelerator}.wait_for_everyone()` before loading `{path}`", site.statement)
        )


def _path_code(context, call: cst.Call, position: int) -> str | None:
    """The code of the path argument of ``torch.save(obj, f)`` (position 1) or ``torch.load(f)`` (position 0)."""
    positional = [arg for arg in call.args if arg.keyword is None]
    value = next((arg.value for arg in call.args if arg.keyword is not None and arg.keyword.value == "f"), None)
    if value is None and len(positional) > position:
        value = positional[position].value
    return None if value is None else " ".join(context.code(value).split())


def _written_before(analysis, order, save, load) -> int | None:
    """Where the load's scope has surely run the save before the load: the order of the save's statement (same
    scope, earlier in the file) or of a call of the function that saves; None otherwise."""
    facts = analysis.facts
    load_at = order[id(facts.statement_at(*load.location[-1]))]
    if save.scope is load.scope:
        at = order[id(facts.statement_at(*save.location[-1]))]
        return at if at < load_at else None
    for site in facts.calls:
        func = site.node.func
        if site.scope is load.scope and isinstance(func, cst.Name) and facts.functions.get(func.value) is save.scope:
            at = order[id(facts.statement_at(*site.location[-1]))]
            if at < load_at:
                return at
    return None


def _waits_between(analysis, order, load, start: int, end: int) -> bool:
    """A ``wait_for_everyone()`` or ``barrier()`` call in the load's scope between two statements."""
    facts = analysis.facts
    for site in facts.calls:
        func = site.node.func
        name = func.attr.value if isinstance(func, cst.Attribute) else func.value if isinstance(func, cst.Name) else None
        if name in ("wait_for_everyone", "barrier") and site.scope is load.scope:
            if start <= order[id(facts.statement_at(*site.location[-1]))] <= end:
                return True
    return False
