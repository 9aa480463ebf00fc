"""AC003 device-moves."""

from __future__ import annotations

import libcst as cst

from accel_convert.analysis import DEVICE, Analysis, _is_device_literal, _is_cpu_literal
from accel_convert.facts import Scope
from accel_convert.imports import dotted_name
from accel_convert.plan import DropMove, ReplaceWith, Retarget
from accel_convert.rules.base import Rule


class DeviceMoves(Rule):
    """Drop device moves of models and batches; point other moves at the accelerator's device.

    ## Why
    `accelerator.prepare` puts the model on the right device for each process, and a prepared data loader yields
    batches already on it. A leftover `.to("cuda")` or `.cuda()` pins every process to the first GPU (or fails on a
    machine without CUDA).

    ## What it does
    - `.to(device)`, `.to(device, non_blocking=True)`, `.cuda()`, `.cuda(non_blocking=True)` disappear from the
      model (`model = Net().to(device)` -> `model = Net()`, `model.cuda()` -> removed) and from everything a
      prepared loader yields: tuple-unpacked batches, dictionaries (`{k: v.to(device) for k, v in batch.items()}`),
      values derived from them (`batch["x"].to(device)` -> `batch["x"]`).
    - A statement left doing nothing goes away: `data, target = data.to(device), target.to(device)`,
      `x = x.cuda()`, `batch = {k: v.to(device) for k, v in batch.items()}`. A block left empty goes too
      (`if use_cuda:` around such moves).
    - Moves of other tensors (noise, masks, constants built in the loop) stay; a hard-coded `.cuda()`, `.to("cuda")`,
      `device="cuda"` or a `--device` command-line option (`.to(args.device)`) is pointed at `accelerator.device`
      (or at the `device` variable, which AC001 made equal to it).
    - `.to(dtype)` and `.to("cpu")` are not device moves and are kept; `.to(device, dtype)` keeps the dtype.

    ## Example
    ```python
    model = Net().to(device)
    for data, target in train_loader:
        data, target = data.to(device), target.to(device)
        noise = torch.randn(data.shape).cuda()
    ```
    becomes
    ```python
    model = Net()
    for data, target in train_loader:
        noise = torch.randn(data.shape).to(accelerator.device)
    ```
    """

    code = "AC003"
    name = "device-moves"
    summary = "Drop device moves of models and batches; point other moves at the accelerator's device."

    def needs(self, analysis):
        return [
            move.site.scope
            for move in analysis.moves
            if move.kind == "other" and _hard_coded(analysis, move.call, move.site.scope) and _device_variable(analysis, move.site.scope) is None
        ] + [site.scope for site, _ in _device_keywords(analysis) if _device_variable(analysis, site.scope) is None]

    def plan(self, context, plan):
        analysis = context.analysis
        bare: set[int] = set()
        sites = []
        for move in analysis.moves:
            call = move.call
            if move.kind in ("batch", "model"):
                plan.expression(call, DropMove(), move.site.statement)
                if _leaves_receiver(call):
                    bare.add(id(call))
                sites.append(move.site)
                what = "model" if move.kind == "model" else "batch"
                plan.changes.append(context.change(self.code, call, f"{what} moved by `accelerator.prepare`: dropped `.{call.func.attr.value}(...)`"))
            elif _hard_coded(analysis, call, move.site.scope):
                device = self._device(context, move.site.scope)
                if device is None:
                    plan.diagnostics.append(context.diagnostic(self.code, call, f"`{context.code(call)}` left as is: no accelerator or device variable in `{move.site.scope.name}`"))
                    continue
                plan.expression(call, Retarget(device), move.site.statement)
                context.use(move.site.scope, move.site.location)
                plan.changes.append(context.change(self.code, call, f"hard-coded device -> `{device}`"))
        for site, arg in _device_keywords(analysis):
            device = self._device(context, site.scope)
            if device is None:
                plan.diagnostics.append(context.diagnostic(self.code, arg, f"`{context.code(arg)}` left as is: no accelerator or device variable in `{site.scope.name}`", site.statement))
                continue
            plan.expression(arg.value, ReplaceWith(device), site.statement)
            context.use(site.scope, site.location)
            plan.changes.append(context.change(self.code, arg, f"hard-coded device -> `{device}`", site.statement))
        for site in sites:
            statement = site.statement
            if isinstance(statement, cst.SimpleStatementLine) and _does_nothing(statement, bare):
                plan.statement(statement).remove = True

    def _device(self, context, scope: Scope) -> str | None:
        accelerator = context.access._direct(scope)
        if accelerator is not None:
            return f"{accelerator}.device"
        variable = _device_variable(context.analysis, scope)
        if variable is not None:
            return variable
        accelerator = context.access.expression(scope)
        return f"{accelerator}.device" if accelerator is not None else None


def _hard_coded(analysis: Analysis, call: cst.Call, scope: Scope) -> bool:
    """``.cuda()``, ``.to("cuda")``, ``.to(torch.device("cuda"))``, ``.to(args.device)``: a device that is not
    the accelerator's."""
    if call.func.attr.value == "cuda":
        return True
    for arg in call.args:
        if arg.keyword is None or arg.keyword.value == "device":
            return _names_accelerator(analysis, arg.value, scope)
    return False


def _names_accelerator(analysis: Analysis, node: cst.BaseExpression, scope: Scope) -> bool:
    if _is_device_literal(node):
        return not _is_cpu_literal(node)
    if isinstance(node, cst.Call) and analysis.qualify(node.func) == "torch.device" and node.args:
        return _names_accelerator(analysis, node.args[0].value, scope)
    key = dotted_name(node)
    return key is not None and analysis.binding(scope, key) in analysis.option_devices


def _device_keywords(analysis: Analysis):
    """``torch.zeros(3, device="cuda")``: calls passing a hard-coded accelerator as ``device=``."""
    for site in analysis.facts.calls:
        if isinstance(site.node.func, cst.Attribute) and site.node.func.attr.value in ("to", "cuda"):
            continue
        for arg in site.node.args:
            if arg.keyword is not None and arg.keyword.value == "device" and _names_accelerator(analysis, arg.value, site.scope):
                yield site, arg


def _device_variable(analysis: Analysis, scope: Scope) -> str | None:
    """A variable visible in ``scope`` that holds the device (and now equals ``accelerator.device``)."""
    current = scope
    while current is not None:
        for (owner, key), role in analysis.roles.items():
            if role == DEVICE and owner is current and "." not in key:
                return key
        current = current.parent
    return None


def _leaves_receiver(call: cst.Call) -> bool:
    return DropMove().apply(call) is call.func.value


def _strip(node: cst.BaseExpression, bare: set[int]) -> cst.BaseExpression:
    while isinstance(node, cst.Call) and id(node) in bare:
        node = node.func.value
    return node


def _does_nothing(statement: cst.SimpleStatementLine, bare: set[int]) -> bool:
    """True when the statement is a no-op once the dropped moves are gone (``x = x``, ``model.cuda()``)."""
    if len(statement.body) != 1:
        return False
    small = statement.body[0]
    if isinstance(small, cst.Expr):
        return id(small.value) in bare
    if not isinstance(small, cst.Assign) or len(small.targets) != 1:
        return False
    target, value = small.targets[0].target, small.value
    if isinstance(target, (cst.Tuple, cst.List)) and isinstance(value, (cst.Tuple, cst.List)):
        if len(target.elements) != len(value.elements):
            return False
        return all(
            _strip(v.value, bare).deep_equals(t.value) for t, v in zip(target.elements, value.elements)
        ) and any(id(v.value) in bare for v in value.elements)
    if isinstance(value, cst.DictComp):
        return _identity_comprehension(value, target, bare)
    return id(value) in bare and _strip(value, bare).deep_equals(target)


def _identity_comprehension(node: cst.DictComp, target: cst.BaseExpression, bare: set[int]) -> bool:
    """``{k: v.to(device) for k, v in target.items()}``."""
    loop = node.for_in
    if loop.ifs or loop.inner_for_in is not None or not isinstance(loop.target, cst.Tuple):
        return False
    names = [element.value for element in loop.target.elements]
    if len(names) != 2 or not all(isinstance(name, cst.Name) for name in names):
        return False
    key, value = node.key, _strip(node.value, bare)
    iterable = loop.iter
    return (
        node.value is not value
        and isinstance(key, cst.Name)
        and isinstance(value, cst.Name)
        and (key.value, value.value) == (names[0].value, names[1].value)
        and isinstance(iterable, cst.Call)
        and not iterable.args
        and isinstance(iterable.func, cst.Attribute)
        and iterable.func.attr.value == "items"
        and iterable.func.value.deep_equals(target)
    )
