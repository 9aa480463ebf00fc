"""AC003 device-moves."""

from __future__ import annotations

import libcst as cst

from accel_convert.analysis import symbols
from accel_convert.analysis.device_defaults import calls_leaving_out, device_defaults, used_otherwise
from accel_convert.analysis.devices import Move
from accel_convert.analysis.expressions import is_cpu_literal, is_device_literal
from accel_convert.analysis.facts import CallSite, Scope
from accel_convert.analysis.imports import dotted_name
from accel_convert.analysis.library_devices import library_devices
from accel_convert.analysis.loops import batch_loaders
from accel_convert.analysis.roles import DEVICE, MODEL, Analysis
from accel_convert.edits.plan import AppendArgument, DropMove, ReplaceWith, Retarget
from accel_convert.rules.base import Rule

# nn.Module methods that return the module itself: ``model.eval().cpu()`` moves ``model``
_RETURN_SELF = frozenset("eval train float half double bfloat16 requires_grad_ share_memory apply".split())


class DeviceMoves(Rule):
    """Drop the device moves that `accelerator.prepare` makes redundant; point the others at the accelerator's device.

    ## Why
    `accelerator.prepare` puts the model on the right device for each process, and a prepared data loader yields
    batches already on it. A leftover `.to("cuda")` or `.cuda()` pins every process to the first GPU (or fails on a
    machine without CUDA). Everything prepare does not place must still be moved, or it stays on the CPU.

    ## What it does
    - `.to(device)`, `.to(device, non_blocking=True)`, `.cuda()`, `.cuda(non_blocking=True)` disappear from a
      prepared model (`model = Net().to(device)` -> `model = Net()`, `model.cuda()` -> removed) and from everything
      a prepared loader yields: tuple-unpacked batches, dictionaries (`{k: v.to(device) for k, v in batch.items()}`),
      values derived from them (`batch["x"].to(device)` -> `batch["x"]`).
    - A statement left doing nothing goes away: `data, target = data.to(device), target.to(device)`,
      `x = x.cuda()`, `batch = {k: v.to(device) for k, v in batch.items()}`. A block left empty goes too
      (`if use_cuda:` around such moves).
    - Moves that prepare does not make redundant stay: tensors the script creates (noise, masks, constants),
      batches of a loader that is not prepared (an evaluation helper's own `DataLoader`, a custom iterator), every
      model and batch move when AC002 declines to add `prepare`, and a prepared model moved back to the device after
      the script moved it elsewhere (`model.cpu()` to save a checkpoint, then `model.to(device)`; the move that
      creates the model is still dropped), and a model the script copies as it is (an EMA:
      `AveragedModel(model)`, timm's `ModelEma`, a class of its own named for one, `ModelEMA(model)`; or
      `copy.deepcopy(model)`): the copy is made on the model's device, so the model must be there first (the
      prepare then finds it in place). A hard-coded `.cuda()`, `.cuda(0)`, `.to("cuda")`, `device="cuda"` or a
      `--device` command-line option (`.to(args.device)`) among them is pointed at `accelerator.device` (or at the
      `device` variable, which AC001 made equal to it).
    - `.to(dtype)` and `.to("cpu")` are not device moves and are kept; `.to(device, dtype)` keeps the dtype.
    - A parameter whose default is a device (`def evaluate(model, loader, device="cuda:0")`,
      `device=torch.device("cuda" if ... else "cpu")`) was fixed when the function was defined, before any
      accelerator existed: it holds a device (moves of prepared objects to it go, as above), and every call of the
      function that leaves it out passes `device=accelerator.device` (`accelerator.device.type` for a string
      default). A method, a function passed around rather than called, or a call that may pass it through
      `*args`/`**kwargs` or cannot reach the accelerator gets a diagnostic instead.

    ## Diagnostics
    A move to a device the tool cannot name is left as written, with a diagnostic saying what to check:
    `.cuda(k)` or `.to(device=k)` with an expression `k` (`args.gpu`, `self.gpu_id`) on something prepare does not
    place, and `.to(k)` on a model or batch where `k` is neither a known device nor a dtype. Under `accel launch`
    each process trains on its own `accelerator.device`: check that `k` is that device, or remove the move when
    prepare already placed the object.

    A hard-coded move that runs when the module is imported, while the accelerator is created later in a function
    (`TABLE = torch.randn(3, 4).cuda()` at the top of the file), is left as is with a diagnostic saying so: every
    process would put it on GPU 0. So is a device a library chooses (`device = select_device("auto")`, a call into
    another package whose result is moved to, in a name or function that says "device"): it does not know the
    process, and the diagnostic at the definition says to use `accelerator.device`.

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
    summary = "Drop the device moves that `accelerator.prepare` makes redundant; point the others at the accelerator's device."
    guarded_by = ("move-of-unprepared", "unprepared-loader")

    def needs(self, decisions):
        analysis = decisions.analysis
        sites = [site for site, _ in _device_keywords(analysis)]
        sites += [move.site for move in _kept_moves(decisions) if _hard_coded(analysis, move.call, move.site.scope)]
        needed = [(site.scope, site.location) for site in sites if _device_variable(analysis, site.scope) is None]
        for default in device_defaults(analysis):
            if default.function.class_name is None:
                needed += [(site.scope, site.location) for site in calls_leaving_out(analysis, default)[0]]
        return needed

    def plan(self, context, plan):
        analysis = context.analysis
        bare: set[int] = set()
        sites = []
        kept = {id(move) for move in _kept_moves(context.decisions)}
        for move in analysis.moves:
            call = move.call
            if id(move) not in kept:
                plan.expression(call, DropMove(), move.site.statement)
                if _leaves_receiver(call):
                    bare.add(id(call))
                sites.append(move.site)
                what = "model" if move.kind == "model" else "batch"
                plan.changes.append(context.change(self.code, call, f"{what} moved by `accelerator.prepare`: dropped `.{call.func.attr.value}(...)`"))
            elif _hard_coded(analysis, call, move.site.scope):
                device = self._device(context, move.site.scope)
                if device is None:
                    plan.diagnostics.append(context.diagnostic(self.code, call, _no_device_message(context, call, move.site.scope)))
                    continue
                plan.expression(call, Retarget(device), move.site.statement)
                context.use(move.site.scope, move.site.location)
                plan.changes.append(context.change(self.code, call, f"hard-coded device -> `{device}`"))
            elif _unknown_device(analysis, _device_argument(call), move.site.scope):
                plan.diagnostics.append(context.diagnostic(self.code, call, _unknown_message(context, call, None)))
        for site in _unclassified_conversions(analysis):
            placed = _placed_by_prepare(analysis, context.decisions.prepared, site, site.node.func.value)
            plan.diagnostics.append(context.diagnostic(self.code, site.node, _unknown_message(context, site.node, placed)))
        for site, arg in _device_keywords(analysis):
            device = self._device(context, site.scope)
            if device is None:
                plan.diagnostics.append(context.diagnostic(self.code, arg, _no_device_message(context, arg, site.scope), site.statement))
                continue
            plan.expression(arg.value, ReplaceWith(device), site.statement)
            context.use(site.scope, site.location)
            plan.changes.append(context.change(self.code, arg, f"hard-coded device -> `{device}`", site.statement))
        for site in sites:
            statement = site.statement
            if isinstance(statement, cst.SimpleStatementLine) and _does_nothing(statement, bare):
                plan.statement(statement).remove = True
        _pass_device_defaults(self.code, context, plan)
        for found in library_devices(analysis):
            message = (
                f"`{found.name} = {context.code(found.call)}` left as is: a library chooses this device without "
                "knowing the process (before the accelerator exists), so every process gets the same one (typically the first GPU) and "
                f"what is moved to `{found.name}` is not on the process's device; use `{found.name} = accelerator.device`"
            )
            plan.diagnostics.append(context.diagnostic(self.code, found.call, message, found.assignment.statement))

    def _device(self, context, scope: Scope) -> str | None:
        accelerator = context.access._direct(scope)
        if accelerator is not None:
            return f"{accelerator}.device"
        variable = _device_variable(context.analysis, scope)
        if variable is not None:
            return variable
        accelerator = context.access.expression(scope)
        return f"{accelerator}.device" if accelerator is not None else None


def _no_device_message(context, node, scope: Scope) -> str:
    """Why a hard-coded device stays: code run at import, before the accelerator exists, says so."""
    head = f"`{context.code(node)}` left as is"
    home = context.access.home
    if scope.parent is None and home.parent is not None:
        return (
            f"{head}: it runs when the module is imported, before the accelerator exists (it is created in "
            f"`{home.name}`), so every process puts it on the same device (`cuda` is GPU 0 until the accelerator "
            "picks the process's own); create it after the accelerator, or move it to `accelerator.device` there"
        )
    return f"{head}: no accelerator or device variable in `{scope.name}`"


def _pass_device_defaults(code, context, plan) -> None:
    """A parameter whose default is a device (``def evaluate(model, loader, device="cuda:0")``): the default was
    fixed before the accelerator existed, so every call that leaves it out passes the accelerator's device
    (``accelerator.device.type`` for a string default); what cannot be done so is diagnosed."""
    analysis = context.analysis
    for default in device_defaults(analysis):
        function = default.function
        fixed = (
            f"`{default.name}={context.code(default.default)}` is fixed when `{function.name}` is defined, before the "
            "accelerator exists, so a call that leaves it out uses that device in every process (GPU 0) instead of "
            "the process's own"
        )
        missing, unknown = calls_leaving_out(analysis, default)
        if function.class_name is not None or used_otherwise(analysis, function):
            why = "a method" if function.class_name is not None else "passed around, not only called"
            message = f"{fixed}; `{function.name}` is {why}, so its calls are not converted: pass `{default.name}=accelerator.device` to it"
            plan.diagnostics.append(context.diagnostic(code, default.default, message, function.node))
            continue
        for site in unknown:
            message = f"{fixed}; this call may leave it out through `*`/`**` arguments: pass `{default.name}=accelerator.device`"
            plan.diagnostics.append(context.diagnostic(code, site.node, message, site.statement))
        for site in missing:
            accelerator = context.access.reachable(site.scope, site.location)
            if accelerator is not None:
                value = f"{accelerator}.device.type" if default.string else f"{accelerator}.device"
                context.use(site.scope, site.location)
            else:
                value = None if default.string else _device_variable(analysis, site.scope)
            if value is None:
                message = f"{fixed}; this call cannot reach the accelerator: pass `{default.name}=accelerator.device`"
                plan.diagnostics.append(context.diagnostic(code, site.node, message, site.statement))
                continue
            plan.expression(site.node, AppendArgument(default.name, True, value), site.statement)
            plan.changes.append(
                context.change(code, site.node, f"`{default.name}={value}` passed: the default `{context.code(default.default)}` was fixed before the accelerator existed", site.statement)
            )


def _kept_moves(decisions) -> list[Move]:
    """The moves that stay: of objects prepare does not place, of batches taken before the prepare statement (a
    peek at the loader to size a layer), of a prepared model moved back to the device, and of a model copied as it
    is (an EMA, ``copy.deepcopy``), since the copy keeps the device the model had."""
    analysis, prepared = decisions.analysis, decisions.prepared
    moved_off = _moved_off_device(analysis)
    copied = _copied(analysis)
    kept = []
    for move in analysis.moves:
        if move.kind == "other" or not move.sources <= prepared:
            kept.append(move)
        elif move.kind == "batch" and move.site.scope is decisions.owner and decisions.preparation.precedes(move.site.location):
            kept.append(move)
        elif move.kind == "model" and _origin(analysis, next(iter(move.sources))) in copied:
            kept.append(move)
        elif move.kind == "model" and _origin(analysis, next(iter(move.sources))) in moved_off:
            receiver = analysis.strip(move.call, move.site.scope)
            if dotted_name(receiver) is not None:  # not the move chained onto the model's construction
                kept.append(move)
    return kept


def _origin(analysis: Analysis, binding):
    return analysis.origins.get(binding, binding)


def _copied(analysis: Analysis) -> set:
    """The models the script copies (``AveragedModel(model)``, ``copy.deepcopy(model)``, a class or function of its
    own named for an EMA, ``ModelEMA(model)``): the copy is made on the model's device."""
    found = set()
    for site in analysis.facts.calls:
        call = site.node
        name = analysis.qualify(call.func) or dotted_name(call.func) or ""
        if not call.args or not (name in symbols.MODEL_COPIES or "ema" in name.rsplit(".", 1)[-1].lower()):
            continue
        key = dotted_name(call.args[0].value)
        binding = analysis.binding(site.scope, key) if key is not None else None
        if analysis.roles.get(binding) == MODEL:
            found.add(_origin(analysis, binding))
    return found


def _moved_off_device(analysis: Analysis) -> set:
    """The models the script moves to the CPU somewhere (``model.cpu()``, ``model.eval().to("cpu")``)."""
    found = set()
    for site in analysis.facts.calls:
        call = site.node
        if not (isinstance(call.func, cst.Attribute) and _to_cpu(analysis, call)):
            continue
        receiver = call.func.value
        while isinstance(receiver, cst.Call) and isinstance(receiver.func, cst.Attribute) and receiver.func.attr.value in _RETURN_SELF:
            receiver = receiver.func.value
        key = dotted_name(receiver)
        binding = analysis.binding(site.scope, key) if key is not None else None
        if analysis.roles.get(binding) == MODEL:
            found.add(_origin(analysis, binding))
    return found


def _to_cpu(analysis: Analysis, call: cst.Call) -> bool:
    if call.func.attr.value == "cpu":
        return not call.args
    device = _device_argument(call) if call.func.attr.value == "to" else None
    if isinstance(device, cst.Call) and analysis.qualify(device.func) == "torch.device" and device.args:
        device = device.args[0].value
    return device is not None and is_cpu_literal(device)


def _device_argument(call: cst.Call) -> cst.BaseExpression | None:
    """The expression a ``.to(...)`` / ``.cuda(...)`` call names the device with (its first positional argument or
    ``device=``); None for ``.cuda()``."""
    for arg in call.args:
        if arg.star:
            return None
        if arg.keyword is None or arg.keyword.value == "device":
            return arg.value
    return None


def _hard_coded(analysis: Analysis, call: cst.Call, scope: Scope) -> bool:
    """``.cuda()``, ``.cuda(0)``, ``.to("cuda")``, ``.to(torch.device("cuda"))``, ``.to(args.device)``: a device that
    is not the accelerator's."""
    device = _device_argument(call)
    if device is None:
        return call.func.attr.value == "cuda"
    return _names_accelerator(analysis, device, scope)


def _names_accelerator(analysis: Analysis, node: cst.BaseExpression, scope: Scope) -> bool:
    if isinstance(node, cst.Integer):
        return True
    if is_device_literal(node):
        return not is_cpu_literal(node)
    if isinstance(node, cst.Call) and analysis.qualify(node.func) == "torch.device" and node.args:
        return _names_accelerator(analysis, node.args[0].value, scope)
    key = dotted_name(node)
    return key is not None and analysis.binding(scope, key) in analysis.option_devices


def _unknown_device(analysis: Analysis, node: cst.BaseExpression | None, scope: Scope) -> bool:
    """True when ``node`` may name a device but none this tool knows: not a literal, a device variable or option, a
    dtype, another tensor's ``.device``/``.dtype``."""
    if node is None or _names_accelerator(analysis, node, scope) or analysis.is_device_expression(node, scope):
        return False
    if isinstance(node, cst.Attribute) and node.attr.value in ("device", "dtype"):
        # another tensor's (or module's) device or dtype; ``self.device`` of a class is a value of its own
        return node.attr.value == "device" and isinstance(node.value, cst.Name) and node.value.value == scope.self_name
    return not _is_dtype(analysis, node, scope)


def _is_dtype(analysis: Analysis, node: cst.BaseExpression, scope: Scope) -> bool:
    """``torch.float16``, ``torch.long`` (how ever imported), or a name assigned one of them."""
    qualified = analysis.qualify(node)
    if qualified is not None:
        return qualified.startswith("torch.")
    key = dotted_name(node)
    if key is None:
        return False
    binding = analysis.binding(scope, key)
    values = [
        assignment.value
        for assignment in analysis.facts.assignments
        if len(assignment.targets) == 1 and dotted_name(assignment.targets[0]) == key
        and analysis.binding(assignment.scope, key) == binding
    ]
    return bool(values) and all((analysis.qualify(value) or "").startswith("torch.") for value in values)


def _unclassified_conversions(analysis: Analysis):
    """``model.to(k)`` / ``batch.to(k)`` calls that are no known move, where ``k`` may be a device."""
    moves = {id(move.call) for move in analysis.moves}
    for site in analysis.facts.calls:
        call = site.node
        if id(call) in moves or not (isinstance(call.func, cst.Attribute) and call.func.attr.value == "to"):
            continue
        positional = [arg for arg in call.args if arg.keyword is None]
        if not positional or positional[0].star or _to_cpu(analysis, call):
            continue
        receiver = call.func.value
        key = dotted_name(receiver)
        is_model = key is not None and analysis.roles.get(analysis.binding(site.scope, key)) == MODEL
        if (is_model or batch_loaders(analysis, site, receiver) is not None) and _unknown_device(analysis, positional[0].value, site.scope):
            yield site


def _placed_by_prepare(analysis: Analysis, prepared: set, site: CallSite, receiver: cst.BaseExpression) -> str | None:
    """"model" for a prepared model, "batch" for what a prepared loader yields, else None."""
    key = dotted_name(receiver)
    if key is not None and analysis.binding(site.scope, key) in prepared:
        return "model"
    loaders = batch_loaders(analysis, site, receiver)
    return "batch" if loaders and loaders <= prepared else None


def _unknown_message(context, call: cst.Call, placed: str | None) -> str:
    device = context.code(_device_argument(call))
    receiver = context.code(call.func.value)
    if call.func.attr.value == "cuda" or any(arg.keyword is not None and arg.keyword.value == "device" for arg in call.args):
        head = f"cannot tell which device `{device}` is"
    else:
        head = f"cannot tell whether `{device}` is a device"
    if placed == "model":
        advice = f"`accelerator.prepare` places `{receiver}` on `accelerator.device`, so a move to a device should go"
    elif placed == "batch":
        advice = f"the prepared loader yields `{receiver}` on `accelerator.device` already, so a move to a device should go"
    else:
        advice = (
            "check that it is the device this process trains on (`accelerator.device`: under `accel launch` each "
            "process has its own)"
        )
    return f"`{context.code(call)}` left as is: {head}; {advice}"


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
    if isinstance(value, cst.ListComp):
        return _identity_list(value, target, bare)
    return id(value) in bare and _strip(value, bare).deep_equals(target)


def _identity_list(node: cst.ListComp, target: cst.BaseExpression, bare: set[int]) -> bool:
    """``batch = [t.to(device) for t in batch]`` once the move is gone (a DataLoader batch is a list already)."""
    loop = node.for_in
    element = _strip(node.elt, bare)
    return (
        node.elt is not element
        and not loop.ifs
        and loop.inner_for_in is None
        and isinstance(loop.target, cst.Name)
        and isinstance(element, cst.Name)
        and element.value == loop.target.value
        and loop.iter.deep_equals(target)
    )


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
