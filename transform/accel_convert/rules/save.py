"""AC012 save."""

from __future__ import annotations

import libcst as cst

from accel_convert.analysis.imports import dotted_name
from accel_convert.edits.plan import ReplaceWith
from accel_convert.rules.base import Rule
from accel_convert.rules.hand_written_ddp import _is_model
from accel_convert.rules.print import reachable, start_of_access

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
    - `model.state_dict()` and `model.load_state_dict(...)` on a model (or on a name assigned from one, such as
      `self.model = model.to(gpu_id)` in a trainer class) become
      `accelerator.unwrap_model(model).state_dict()` / `.load_state_dict(...)`, in checkpoint dictionaries too, so
      the saved keys and the keys loaded back are those of the plain model, with any number of processes.
    - A `GradScaler`'s `state_dict()` / `load_state_dict(...)` in the same checkpoint goes to
      `accelerator.scaler` (AC014).

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
        start = start_of_access(context)
        for site in analysis.facts.calls:
            call = site.node
            accelerator = reachable(context, site.scope, site.location, start)
            if accelerator is None:
                continue
            func = call.func
            if analysis.qualify(func) == "torch.save" and len(call.args) >= 2 and not self._to_file_object(context, site):
                plan.expression(func, ReplaceWith(f"{accelerator}.save"), site.statement)
                plan.changes.append(context.change(self.code, call, f"`torch.save` -> `{accelerator}.save`"))
            elif isinstance(func, cst.Attribute) and func.attr.value in ("state_dict", "load_state_dict"):
                if not _is_model(analysis, site.scope, func.value):
                    continue
                model = context.code(func.value)
                plan.expression(func.value, ReplaceWith(f"{accelerator}.unwrap_model({model})"), site.statement)
                plan.changes.append(
                    context.change(self.code, call, f"`{model}.{func.attr.value}` through `{accelerator}.unwrap_model`")
                )
            else:
                continue
            context.use(site.scope, site.location)

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
