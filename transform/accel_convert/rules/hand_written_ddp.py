"""AC017 hand-written-ddp."""

from __future__ import annotations

import libcst as cst

from accel_convert.analysis import symbols
from accel_convert.analysis.devices import option_dest
from accel_convert.analysis.expressions import strip_moves
from accel_convert.analysis.gpu_counts import gpu_scaled_batches
from accel_convert.analysis.gpu_index import gpu_index_use
from accel_convert.analysis.imports import dotted_name
from accel_convert.analysis.roles import holds_model
from accel_convert.analysis.traverse import free_names
from accel_convert.edits.placement import defined_after
from accel_convert.edits.plan import ReplaceWith
from accel_convert.rules.base import Rule

# the launcher's environment variables and the accelerator property holding the same number
_ENVIRONMENT = {"LOCAL_RANK": "local_process_index", "RANK": "process_index", "WORLD_SIZE": "num_processes"}
_RANK_CALLS = {"torch.distributed.get_rank": "RANK"}
_DEFAULTS = {"LOCAL_RANK": "0", "RANK": "0", "WORLD_SIZE": "1"}  # their values without a launcher
# which process a rank-0 guard selects
_GUARDS = {"RANK": "is_main_process", "LOCAL_RANK": "is_local_main_process"}
_SETUP = frozenset({"torch.cuda.set_device", "torch.distributed.init_process_group"})
_RENDEZVOUS = frozenset({"MASTER_ADDR", "MASTER_PORT"})
_SPAWN = frozenset({"torch.multiprocessing.spawn", "torch.multiprocessing.spawn.spawn"})
# DistributedDataParallel's arguments: those the accelerator sets itself, and the options DistributedDataParallelKwargs holds
_PLACEMENT = ("module", "device_ids", "output_device")  # also the order of the first positional arguments
_DDP_OPTIONS = frozenset({"dim", "broadcast_buffers", "bucket_cap_mb", "find_unused_parameters", "check_reduction",
                          "gradient_as_bucket_view", "static_graph"})


class HandWrittenDDP(Rule):
    """Let the launcher and `accelerator.prepare` do what a hand-written DDP script does itself.

    ## Why
    `accel launch` starts the processes and sets their ranks; `accelerator.prepare` wraps the model for
    data-parallel training. A model wrapped by hand in `DistributedDataParallel` or `nn.DataParallel` would end up
    wrapped twice, ranks read from the environment are missing under a plain `python script.py`, and
    `torch.multiprocessing.spawn` would start processes of its own under the launcher's.

    ## What it does
    - `model = DistributedDataParallel(model, device_ids=[rank])` (torch's or apex's) and
      `model = nn.DataParallel(model)` are removed, also under a condition (`model = nn.DataParallel(model) if
      n_gpu > 1 else model`; `net = nn.DataParallel(model) if c else model` becomes `net = model`)
      (the model is prepared instead, and an `if` left empty goes too); `ddp_model = DDP(model)` becomes
      `ddp_model = model`, `model = nn.DataParallel(model).to(device)` `model = model.to(device)`.
    - The options of a removed torch `DistributedDataParallel` are carried over to the accelerator, which passes
      them to the wrapper it creates: `DDP(model, device_ids=[rank], find_unused_parameters=True)` gives
      `Accelerator(kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])`, with
      `DistributedDataParallelKwargs` imported next to `Accelerator` (from `accelerate` with `--target
      accelerate`). Without it, a model whose loss leaves some parameters unused stops at the second step under
      several processes. Carried: `find_unused_parameters`, `broadcast_buffers`, `bucket_cap_mb`,
      `gradient_as_bucket_view`, `static_graph`, `check_reduction`, `dim`; `device_ids` and `output_device` go (the
      accelerator sets them for the process's device).
    - `int(os.environ["LOCAL_RANK"])` (also `os.environ.get(...)`, `os.getenv(...)`) becomes
      `accelerator.local_process_index`; `RANK` becomes `accelerator.process_index`, `WORLD_SIZE`
      `accelerator.num_processes`.
    - A rank-0 guard, `rank == 0` or `local_rank in [-1, 0]` on a name that holds a rank read from the
      environment or from `dist.get_rank()` (or on that read itself), becomes `accelerator.is_main_process`
      (`accelerator.is_local_main_process` for the local rank). So does `args.local_rank in [-1, 0]` in a script
      that declares the `--local_rank` option of the old `torch.distributed.launch` (the launcher passes no
      such option: every process would see the default `-1`).
    - The functional form, `nn.parallel.data_parallel(self.main, x, range(self.ngpu))` (in a model's `forward`),
      becomes `self.main(x)`: it splits one batch over the GPUs of one process, and every process would use the
      same GPUs. With `dim=`, `module_kwargs=` or `*args` it is left as is, with a diagnostic.
    - A batch size scaled by the number of GPUs, as DataParallel scripts do (`batch_size * n_gpu`,
      `args.batch_size * max(1, torch.cuda.device_count())`, `batch_size *= ngpu`, a product given as a
      DataLoader's `batch_size=` or assigned to a batch size), gets a diagnostic: DataParallel splits one such
      batch over the GPUs, but under `accel launch` every process loads batches of that size itself, so each step
      takes num_processes times as many samples. A GPU count is `torch.cuda.device_count()` (or another device
      kind's), a name assigned from one, or a name that says so (`n_gpu`, `ngpu`, `num_gpus`, `args.gpus`).
    - `mp.spawn(main, args=(world_size,), nprocs=world_size)` becomes `main(int(os.environ.get("RANK", 0)),
      world_size)`: the launcher starts the processes, and each calls the function once with its own rank
      (0 under plain `python`). Where the function uses that argument as a GPU index of its machine
      (`torch.cuda.set_device(gpu)`, `.cuda(gpu)`, `torch.device("cuda", gpu)`, `f"cuda:{gpu}"`, `device_ids=[gpu]`,
      also through `args.gpu = gpu`) it gets the local rank, `LOCAL_RANK`, which is what spawn passed: the global
      rank of a process on a second machine is no GPU there. `import os` is added when the module lacks it.
      `os.environ["MASTER_ADDR"] = ...` and `MASTER_PORT` lines are removed: they
      would overwrite the address the launcher set.

    A rank read in a function that cannot reach the accelerator keeps reading the environment, with the value
    the variable has without a launcher as default (`os.environ.get("LOCAL_RANK", "0")`), and a diagnostic. A
    wrapper that is not assigned on its own line (or wraps no model the converter knows), and a spawn whose function or arguments are not plain (`args=`
    not a tuple, options passed by position, other keywords) are left as they are, with a diagnostic. A wrapper
    option `DistributedDataParallelKwargs` lacks (`process_group=`), one passed as `**options`, and one whose
    value reads names not set where the accelerator is created are not carried, with a diagnostic. The
    `torch.distributed` calls themselves (`init_process_group`, `barrier`, `all_reduce`, ...) are AC016's.

    **Unsafe** (in ruff's sense): a number the script computes for itself (`world_size =
    torch.cuda.device_count()`) is kept and may differ from the launcher's process count. One accelerator has one
    set of wrapper options: those of all removed wrappers together apply to every model it prepares (an option two
    wrappers set differently keeps the first value, with a diagnostic).

    ## Example
    ```python
    local_rank = int(os.environ["LOCAL_RANK"])
    model = DDP(model, device_ids=[local_rank], find_unused_parameters=True)
    ...
    if local_rank == 0:
        print(f"loss {loss:.4f}")
    ```
    becomes
    ```python
    accelerator = Accelerator(kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    local_rank = accelerator.local_process_index
    ...
    if accelerator.is_local_main_process:
        print(f"loss {loss:.4f}")
    ```
    """

    code = "AC017"
    name = "hand-written-ddp"
    summary = "Let the launcher and `accelerator.prepare` do what a hand-written DDP script does itself."
    guarded_by = ("sampler-under-prepare", "backward-unwrapped", "prepare-arg-unbound")
    unsafe = True

    def needs(self, decisions):
        analysis = decisions.analysis
        reads = [(site.scope, site.location) for site in _rank_reads(analysis)]
        guards = [(scope, location) for _, _, scope, location, _ in _guards(analysis)]
        return reads + guards

    def plan(self, context, plan):
        analysis = context.analysis
        unwrapped = []  # hand-written DDP wrappers removed
        for site in analysis.facts.calls:
            qualified = analysis.qualify(site.node.func)
            if qualified in symbols.MODEL_WRAPPERS:
                if _unwrap(context, plan, self.code, site, qualified) and qualified in symbols.TORCH_DDP:
                    unwrapped.append(site)
            elif qualified in _SPAWN:
                _spawn(context, plan, self.code, site)
            elif qualified in symbols.FUNCTIONAL_DATA_PARALLEL:
                _call_directly(context, plan, self.code, site)
        _report_gpu_scaled_batches(context, plan, self.code)
        _carry_options(context, plan, self.code, unwrapped)
        _drop_rendezvous(context, plan, self.code)
        guarded = set()
        for node, subject, scope, location, statement in _guards(analysis):
            accelerator = context.access.expression(scope)
            if accelerator is None:
                continue
            variable = _GUARDS[_guard_kind(analysis, scope, subject)]
            plan.expression(node, ReplaceWith(f"{accelerator}.{variable}"), statement)
            guarded.update(id(call) for call in _calls_in(node))
            context.use(scope, location)
            plan.changes.append(context.change(self.code, node, f"`{context.code(node)}` -> `{accelerator}.{variable}`", statement))
        for site in _rank_reads(analysis):
            name = _rank_of(analysis, site.node)
            if id(site.node) in guarded or analysis.qualify(site.node.func) in _RANK_CALLS:
                continue
            accelerator = context.access.expression(site.scope)
            if accelerator is None:
                _with_default(context, plan, self.code, site, name)
                continue
            replacement = f"{accelerator}.{_ENVIRONMENT[name]}"
            plan.expression(site.node, ReplaceWith(replacement), site.statement)
            context.use(site.scope, site.location)
            plan.changes.append(context.change(self.code, site.node, f"`{context.code(site.node)}` -> `{replacement}`"))


def _with_default(context, plan, code, site, name) -> None:
    """A rank read where the accelerator is out of reach: ``os.environ["RANK"]`` -> ``os.environ.get("RANK", "0")``,
    so that the script still runs under plain ``python``; a diagnostic says it was not converted."""
    read = site.node.args[0].value
    message = f"`{context.code(site.node)}` left as is: `{site.scope.name}` cannot reach the accelerator"
    if isinstance(read, cst.Subscript):
        default = _DEFAULTS[name]
        replacement = f"{context.code(read.value)}.get({context.code(read.slice[0].slice.value)}, \"{default}\")"
        plan.expression(read, ReplaceWith(replacement), site.statement)
        message = f"`{context.code(read)}` -> `{replacement}` (the value without a launcher), not the accelerator's: `{site.scope.name}` cannot reach it"
    plan.diagnostics.append(context.diagnostic(code, site.node, message))


def _unwrap(context, plan, code, site, qualified) -> bool:
    """``model = DDP(model, ...)`` removed (its import goes with the other imports the conversion leaves unused);
    ``ddp_model = DDP(model)`` -> ``ddp_model = model``; ``model = DataParallel(model).to(device)`` ->
    ``model = model.to(device)``. True when the wrapper goes."""
    analysis, call, statement = context.analysis, site.node, site.statement
    name = qualified.rsplit(".", 1)[1]
    positional = [arg.value for arg in call.args if arg.keyword is None and not arg.star]
    assign = _lone_assignment(statement)
    other = _other_branch(assign.value, call, context) if assign is not None else None  # ``m = W(m) if c else m``
    moved = assign is not None and strip_moves(assign.value, lambda node: analysis.is_move_call(node, site.scope)) is call
    wrapped = moved or other is not None
    if not wrapped or not positional or not holds_model(analysis, site.scope, positional[0], assign.targets[0].target):
        message = f"`{name}` wraps the model by hand; remove it: `accelerator.prepare` distributes the model"
        plan.diagnostics.append(context.diagnostic(code, call, message))
        return False
    target, model = context.code(assign.targets[0].target), context.code(positional[0])
    if other is not None and other != model:
        message = (
            f"`{name}` wraps the model under a condition whose other branch is not `{model}`; remove the wrapper: "
            "`accelerator.prepare` distributes the model"
        )
        plan.diagnostics.append(context.diagnostic(code, call, message))
        return False
    if other is not None and target != model:  # ``net = DataParallel(model) if c else model`` -> ``net = model``
        plan.expression(assign.value, ReplaceWith(model), statement)
        message = f"`{context.code(assign.value)}` -> `{model}`: `accelerator.prepare` distributes it"
        plan.changes.append(context.change(code, call, message))
    elif target == model and (assign.value is call or other is not None):
        plan.statement(statement).remove = True
        plan.changes.append(context.change(code, call, f"`{name}` wrapper removed: `accelerator.prepare` distributes the model"))
    else:
        plan.expression(call, ReplaceWith(model), statement)
        plan.changes.append(context.change(code, call, f"`{name}({model}, ...)` -> `{model}`: `accelerator.prepare` distributes it"))
    return True


def _other_branch(value, call, context) -> str | None:
    """``DataParallel(m) if c else m`` (or ``m if c else DataParallel(m)``): the code of the branch without the
    wrapper; None when ``value`` is not such a conditional around ``call``."""
    if not isinstance(value, cst.IfExp):
        return None
    if value.body is call:
        return context.code(value.orelse)
    if value.orelse is call:
        return context.code(value.body)
    return None


_FUNCTIONAL_PARAMETERS = ("module", "inputs", "device_ids", "output_device", "dim", "module_kwargs")


def _call_directly(context, plan, code, site) -> None:
    """``nn.parallel.data_parallel(self.main, x, range(self.ngpu))`` -> ``self.main(x)``: the functional
    DataParallel splits one batch over the process's GPUs (every process would use the same ones)."""
    call = site.node
    given: dict[str | None, cst.BaseExpression] = {}
    for index, arg in enumerate(call.args):
        if arg.keyword is not None:
            key = arg.keyword.value
        else:
            key = _FUNCTIONAL_PARAMETERS[index] if index < len(_FUNCTIONAL_PARAMETERS) and not arg.star else None
        given[key] = arg.value
    function = context.code(call.func)
    if None in given or "module" not in given or "inputs" not in given or {"dim", "module_kwargs"} & set(given):
        message = (
            f"`{function}(...)` splits each batch over the GPUs of this process: under `accel launch` every process "
            "would use the same GPUs; call the module directly (`accelerator.prepare` distributes the model)"
        )
        plan.diagnostics.append(context.diagnostic(code, call, message))
        return
    inputs = given["inputs"]
    if isinstance(inputs, cst.Tuple):
        arguments = ", ".join(context.code(element).rstrip(", ") for element in inputs.elements)
    else:
        arguments = context.code(inputs)
    replacement = f"{context.code(given['module'])}({arguments})"
    plan.expression(call, ReplaceWith(replacement), site.statement)
    message = f"`{function}(...)` -> `{replacement}`: `accelerator.prepare` distributes the model over the processes"
    plan.changes.append(context.change(code, call, message))


def _report_gpu_scaled_batches(context, plan, code) -> None:
    """``batch_size * n_gpu``: a DataParallel batch, split over the GPUs of one process; under a launcher every
    process loads that many samples itself."""
    for node, size, count in gpu_scaled_batches(context.analysis):
        message = (
            f"`{context.code(node)}` scales the batch size by the number of GPUs (`{context.code(count)}`), as "
            "`nn.DataParallel` needs, which splits one batch over the GPUs of one process: under `accel launch` "
            "every process loads batches of this size itself, so a step takes num_processes times as many samples; "
            f"use the per-process batch size (`{context.code(size)}`)"
        )
        plan.diagnostics.append(context.diagnostic(code, node, message))


def _carry_options(context, plan, code, sites) -> None:
    """The options of the removed ``DistributedDataParallel`` wrappers (``find_unused_parameters=True``, ...) become
    ``Accelerator(kwargs_handlers=[DistributedDataParallelKwargs(...)])``; ``device_ids`` / ``output_device`` go
    (the accelerator sets them). One accelerator has one set of options, the union of the wrappers'; an option
    given two values, one DistributedDataParallelKwargs lacks, or one the accelerator's scope cannot read is
    reported, not carried."""
    analysis, home = context.analysis, context.access.home
    position = context.access.position
    carried: dict[str, str] = {}
    names: set[str] = set()
    for site in sites:
        call = site.node
        unknown, unreadable, conflicting = [], [], []
        for index, arg in enumerate(call.args):
            keyword = arg.keyword.value if arg.keyword is not None else None
            if keyword in _PLACEMENT or (keyword is None and not arg.star and index < len(_PLACEMENT)):
                continue
            text = context.code(arg).rstrip(", ")
            value_names = free_names(arg.value) - {"True", "False", "None"}
            if keyword not in _DDP_OPTIONS and not arg.star:
                unknown.append(text)
            elif arg.star or (value_names and (site.scope is not home or defined_after(analysis, home, value_names, *position))):
                unreadable.append(text)
            elif carried.setdefault(keyword, context.code(arg.value)) != context.code(arg.value):
                conflicting.append(text)
            else:
                names |= value_names
        problems = (
            (unknown, f"dropped: `{symbols.DDP_KWARGS}` has no such option (the accelerator's own process group is used)"),
            (unreadable, f"not carried over: it cannot be read where the accelerator is created; pass `{symbols.DDP_KWARGS}(...)` "
                         "to `Accelerator(kwargs_handlers=[...])` by hand"),
            (conflicting, "not carried over: another `DistributedDataParallel` of the file sets it differently, and the "
                          "accelerator gives every model the same options"),
        )
        for texts, reason in problems:
            if texts:
                message = f"`{', '.join(texts)}` of the removed `DistributedDataParallel` {reason}"
                plan.diagnostics.append(context.diagnostic(code, call, message))
    if not carried:
        return
    options = ", ".join(f"{keyword}={value}" for keyword, value in carried.items())
    argument = f"kwargs_handlers=[{symbols.DDP_KWARGS}({options})]"
    context.accelerator_arguments.append((argument, names))
    context.accelerator_imports.append(symbols.DDP_KWARGS)
    plan.changes.append(context.change(code, sites[0].node, f"`{options}` -> `Accelerator({argument})`"))


def _drop_rendezvous(context, plan, code) -> None:
    """``os.environ["MASTER_PORT"] = "12355"`` removed: it would overwrite the address the launcher set."""
    analysis = context.analysis
    for assignment in analysis.facts.assignments:
        if len(assignment.targets) != 1 or _lone_assignment(assignment.statement) is None:
            continue
        key = _environment_key(analysis, assignment.targets[0])
        if key in _RENDEZVOUS:
            plan.statement(assignment.statement).remove = True
            plan.changes.append(context.change(code, assignment.node, f"`os.environ[{key!r}]` set by hand removed: the launcher sets it"))


def _spawn(context, plan, code, site) -> None:
    """``mp.spawn(fn, args=(a,), nprocs=n)`` -> ``fn(int(os.environ.get("RANK", 0)), a)``."""
    call = site.node
    positional = [arg.value for arg in call.args if arg.keyword is None and not arg.star]
    keywords = {arg.keyword.value: arg.value for arg in call.args if arg.keyword is not None}
    extra = set(keywords) - {"args", "nprocs", "join"}
    args = keywords.get("args", cst.Tuple([]))
    function = positional[0] if positional else keywords.get("fn")
    if function is None or extra or len(positional) > 1 or not isinstance(args, cst.Tuple) or not _can_import_os(context):
        message = f"`{context.code(call.func)}` left as is: the launcher starts the processes; call the function once instead"
        plan.diagnostics.append(context.diagnostic(code, call, message))
        return
    values = ", ".join(context.code(element.value) for element in args.elements)
    # spawn passes the process's index on its machine; a function that pins that GPU needs the local rank (the
    # global rank of a process on a second machine is no GPU there), otherwise the global rank is the rank it meant
    spawned = context.analysis.facts.functions.get(function.value) if isinstance(function, cst.Name) else None
    gpu = spawned is not None and bool(spawned.params) and gpu_index_use(context.analysis, spawned, spawned.params[0]) is not None
    variable = "LOCAL_RANK" if gpu else "RANK"
    rank = f'int(os.environ.get("{variable}", 0))'
    replacement = f"{context.code(function)}({rank}{', ' + values if values else ''})"
    plan.expression(call, ReplaceWith(replacement), site.statement)
    why = f": `{spawned.params[0]}` is a GPU index of this machine" if gpu else ""
    plan.changes.append(context.change(code, call, f"`{context.code(call.func)}(...)` -> `{replacement}`: the launcher starts the processes{why}"))
    if not _is_os_imported(context):
        _import_os(context, plan, code)


def _is_os_imported(context) -> bool:
    return context.analysis.qualify(cst.Name("os")) == "os"


def _can_import_os(context) -> bool:
    """``os`` is imported, or the name is free and the module has a top-level import to put ``import os`` next to."""
    if _is_os_imported(context):
        return True
    analysis = context.analysis
    if "os" in analysis.imports.names or any("os" in scope.assigned or "os" in scope.params for scope in analysis.facts.scopes):
        return False
    return _os_import_place(analysis.facts.module) is not None


def _os_import_place(module: cst.Module):
    """(the statement to put ``import os`` next to, True to put it after): in the module's first group of imports,
    before the first ``import x`` / ``from x import`` that sorts after ``os``, else after the group's last one."""
    group = []
    for statement in module.body:
        line = statement.body[0] if isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1 else None
        if isinstance(line, (cst.Import, cst.ImportFrom)):
            if isinstance(line, cst.ImportFrom) and line.module is not None and dotted_name(line.module) == "__future__":
                continue
            if group and statement.leading_lines:
                break
            group.append((statement, _import_root(line)))
        elif group:
            break
    for statement, root in group:
        if root is not None and root > "os":
            return statement, False
    return (group[-1][0], True) if group else None


def _import_root(line) -> str | None:
    if isinstance(line, cst.Import):
        return dotted_name(line.names[0].name)
    return None if line.module is None or line.relative else dotted_name(line.module)


def _import_os(context, plan, code) -> None:
    statement, after = _os_import_place(context.analysis.facts.module)
    new = cst.parse_statement("import os\n")
    if after:
        plan.statement(statement).after.append(new)
    else:
        plan.statement(statement).before.append(new)
    plan.changes.append(context.change(code, statement, "`import os` added: the spawned function's rank is read from the environment"))


def _lone_assignment(statement) -> cst.Assign | None:
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return None
    assign = statement.body[0]
    return assign if isinstance(assign, cst.Assign) and len(assign.targets) == 1 else None


def _environment_key(analysis, node: cst.BaseExpression) -> str | None:
    """``os.environ["X"]``, ``os.environ.get("X", d)``, ``os.getenv("X", d)`` -> ``X``."""
    if isinstance(node, cst.Subscript) and analysis.qualify(node.value) == "os.environ" and len(node.slice) == 1:
        index = node.slice[0].slice
        key = index.value if isinstance(index, cst.Index) else None
    elif isinstance(node, cst.Call) and node.args and (
        analysis.qualify(node.func) == "os.getenv"
        or (isinstance(node.func, cst.Attribute) and node.func.attr.value == "get" and analysis.qualify(node.func.value) == "os.environ")
    ):
        key = node.args[0].value
    else:
        return None
    return key.evaluated_value if isinstance(key, cst.SimpleString) else None


def _rank_of(analysis, call: cst.Call) -> str | None:
    """``int(<environment read of RANK, LOCAL_RANK or WORLD_SIZE>)`` or ``dist.get_rank()`` -> the variable."""
    qualified = analysis.qualify(call.func)
    if qualified in _RANK_CALLS:
        return _RANK_CALLS[qualified] if not call.args else None
    if not isinstance(call.func, cst.Name) or call.func.value != "int" or len(call.args) != 1:
        return None
    key = _environment_key(analysis, call.args[0].value)
    return key if key in _ENVIRONMENT else None


def _rank_reads(analysis):
    """Calls reading a rank, except in the lines AC016 removes (``torch.cuda.set_device(int(os.environ[...]))``)."""
    for site in analysis.facts.calls:
        if _rank_of(analysis, site.node) is not None and not _is_setup_line(analysis, site.statement):
            yield site


def _is_setup_line(analysis, statement) -> bool:
    if not (isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1):
        return False
    line = statement.body[0]
    return isinstance(line, cst.Expr) and isinstance(line.value, cst.Call) and analysis.qualify(line.value.func) in _SETUP


def _rank_variables(analysis) -> dict:
    """Bindings assigned exactly once, from a rank read: binding -> RANK or LOCAL_RANK."""
    found, counts = {}, {}
    for assignment in analysis.facts.assignments:
        for target in assignment.targets:
            key = dotted_name(target)
            if key is None:
                continue
            binding = analysis.binding(assignment.scope, key)
            counts[binding] = counts.get(binding, 0) + 1
            value = assignment.value
            if len(assignment.targets) == 1 and isinstance(value, cst.Call):
                name = _rank_of(analysis, value)
                if name in _GUARDS:
                    found[binding] = name
    return {binding: name for binding, name in found.items() if counts[binding] == 1}


def _guard_kind(analysis, scope, subject) -> str:
    if isinstance(subject, cst.Call):
        return _rank_of(analysis, subject)
    return _rank_variables(analysis).get(analysis.binding(scope, dotted_name(subject)), "LOCAL_RANK")


def _guards(analysis):
    """Rank-0 tests in ``if`` statements: (test, its rank subject, scope, location, if statement)."""
    variables = _rank_variables(analysis)
    option = _declares_local_rank_option(analysis)
    for statement, scope, location in analysis.facts.if_statements:
        for node, subject in _rank_zero_tests(statement.test):
            if _is_rank(analysis, scope, subject, variables, option):
                yield node, subject, scope, location, statement


def _is_rank(analysis, scope, node, variables, option: bool) -> bool:
    """A rank read, a variable holding one, or ``args.local_rank`` where the script declares ``--local_rank``."""
    if isinstance(node, cst.Call):
        return _rank_of(analysis, node) in _GUARDS
    key = dotted_name(node)
    if key is None:
        return False
    return analysis.binding(scope, key) in variables or (option and isinstance(node, cst.Attribute) and node.attr.value == "local_rank")


def _declares_local_rank_option(analysis) -> bool:
    """``parser.add_argument("--local_rank", ...)``: the option ``torch.distributed.launch`` used to pass."""
    return any(option_dest(site.node) == "local_rank" for site in analysis.facts.calls)


def _selected(node) -> tuple[cst.BaseExpression, set] | None:
    """``x == 0`` -> (x, {0}); ``x in [-1, 0]`` / ``(-1, 0)`` / ``{0}`` -> (x, {-1, 0}); ``a == -1 or a == 0`` too."""
    if isinstance(node, cst.BooleanOperation) and isinstance(node.operator, cst.Or):
        left, right = _selected(node.left), _selected(node.right)
        if left and right and left[0].deep_equals(right[0]):
            return left[0], left[1] | right[1]
        return None
    if not isinstance(node, cst.Comparison) or len(node.comparisons) != 1:
        return None
    operator, right = node.comparisons[0].operator, node.comparisons[0].comparator
    if isinstance(operator, cst.Equal):
        return node.left, {_integer(right)}
    if isinstance(operator, cst.In) and isinstance(right, (cst.List, cst.Tuple, cst.Set)):
        return node.left, {_integer(element.value) for element in right.elements}
    return None


def _integer(node) -> int | None:
    if isinstance(node, cst.Integer):
        return int(node.value)
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus) and isinstance(node.expression, cst.Integer):
        return -int(node.expression.value)
    return None


def _rank_zero_tests(test: cst.BaseExpression):
    """The parts of a test that select rank 0, through ``and``/``or``/``not``: (part, rank subject)."""
    selected = _selected(test)
    if selected is not None and 0 in selected[1] and selected[1] <= {0, -1}:
        yield test, selected[0]
    elif isinstance(test, cst.BooleanOperation):
        yield from _rank_zero_tests(test.left)
        yield from _rank_zero_tests(test.right)
    elif isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        yield from _rank_zero_tests(test.expression)


def _calls_in(node: cst.CSTNode):
    if isinstance(node, cst.Call):
        yield node
    for child in node.children:
        yield from _calls_in(child)
