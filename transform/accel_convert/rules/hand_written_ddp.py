"""AC017 hand-written-ddp."""

from __future__ import annotations

import libcst as cst

from accel_convert.analysis import symbols
from accel_convert.analysis.expressions import strip_moves
from accel_convert.analysis.gpu_counts import gpu_scaled_batches
from accel_convert.analysis.gpu_index import gpu_index_use
from accel_convert.analysis.imports import dotted_name
from accel_convert.analysis.main_only_forwards import main_only_forwards
from accel_convert.analysis.ranks import (
    ENVIRONMENT,
    GUARDS,
    RANK_CALLS,
    environment_key,
    guard_kind,
    rank_of,
    rank_zero_guards,
)
from accel_convert.analysis.roles import holds_model
from accel_convert.analysis.traverse import free_names
from accel_convert.edits.placement import defined_after
from accel_convert.edits.plan import ReplaceWith
from accel_convert.rules.base import Rule

_DEFAULTS = {"LOCAL_RANK": "0", "RANK": "0", "WORLD_SIZE": "1"}  # their values without a launcher
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
    - A launch test on the sentinel default of a rank variable, `int(os.environ.get("RANK", -1)) != -1` (nanoGPT's
      `ddp = ...`), becomes `accelerator.num_processes > 1` (`== -1`: `accelerator.num_processes == 1`): under
      `accel launch` the variable is always set, so the test would always pass.
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

    A model forward on the main process only gets a diagnostic: a call of a model, or of a function of the file
    that calls one (`estimate_loss()`), under `if master_process:` (a name assigned a rank-0 test, or `True` without
    a launcher) or a rank-0 guard. DDP runs it, but a sharded model (FSDP, DeepSpeed ZeRO-3) gathers its
    parameters from every process in each forward, and the job would hang.

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
        guards = [(scope, location) for _, _, scope, location, _ in rank_zero_guards(analysis)]
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
        _report_main_only_forwards(context, plan, self.code)
        _carry_options(context, plan, self.code, unwrapped)
        _drop_rendezvous(context, plan, self.code)
        guarded = set()
        for node, subject, scope, location, statement in rank_zero_guards(analysis):
            accelerator = context.access.expression(scope)
            if accelerator is None:
                continue
            variable = GUARDS[guard_kind(analysis, scope, subject)]
            plan.expression(node, ReplaceWith(f"{accelerator}.{variable}"), statement)
            guarded.update(id(call) for call in _calls_in(node))
            context.use(scope, location)
            plan.changes.append(context.change(self.code, node, f"`{context.code(node)}` -> `{accelerator}.{variable}`", statement))
        for site, test, launched in _launch_tests(analysis):
            accelerator = context.access.expression(site.scope)
            if accelerator is None:
                continue
            replacement = f"{accelerator}.num_processes {'>' if launched else '=='} 1"
            plan.expression(test, ReplaceWith(replacement), site.statement)
            guarded.add(id(site.node))
            context.use(site.scope, site.location)
            plan.changes.append(context.change(self.code, test, f"`{context.code(test)}` -> `{replacement}`", site.statement))
        for site in _rank_reads(analysis):
            name = rank_of(analysis, site.node)
            if id(site.node) in guarded or analysis.qualify(site.node.func) in RANK_CALLS:
                continue
            accelerator = context.access.expression(site.scope)
            if accelerator is None:
                _with_default(context, plan, self.code, site, name)
                continue
            replacement = f"{accelerator}.{ENVIRONMENT[name]}"
            plan.expression(site.node, ReplaceWith(replacement), site.statement)
            context.use(site.scope, site.location)
            plan.changes.append(context.change(self.code, site.node, f"`{context.code(site.node)}` -> `{replacement}`"))


def _report_main_only_forwards(context, plan, code) -> None:
    for site, guard, model in main_only_forwards(context.analysis):
        called = context.code(site.node.func)
        runs = f"`{called}()` runs `{model}`" if called != model else f"`{called}(...)` runs"
        message = (
            f"{runs} on the main process only (under `if {context.code(guard.test)}:`): with DDP that works, but a "
            "sharded model (FSDP, DeepSpeed ZeRO-3) needs every process in each forward, and the job would hang; "
            "call it on every process, before that `if`, and keep only the printing and saving under it"
        )
        plan.diagnostics.append(context.diagnostic(code, site.node, message))


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
        key = environment_key(analysis, assignment.targets[0])
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






def _launch_tests(analysis):
    """``int(os.environ.get("RANK", -1)) != -1`` (a launcher sets the variable; without one it has the default that
    no process number has): (its rank read, the comparison, True for "launched"). Under ``accel launch`` the variable
    is always set, so the test becomes one of the process count."""
    for site in analysis.facts.calls:
        if rank_of(analysis, site.node) is None or len(site.node.args) != 1:
            continue
        read = site.node.args[0].value
        default = read.args[1].value if isinstance(read, cst.Call) and len(read.args) == 2 else None
        sentinel = _negative_integer(default)
        if sentinel is None:
            continue
        for test in _compares_of(site.statement, site.node):
            operator = test.comparisons[0].operator
            if _negative_integer(test.comparisons[0].comparator) == sentinel:
                yield site, test, isinstance(operator, cst.NotEqual)


def _negative_integer(node) -> int | None:
    """``-1`` (or ``"-1"``) as a number; None for anything else."""
    if isinstance(node, cst.SimpleString):
        text = node.evaluated_value
        return int(text) if isinstance(text, str) and text.lstrip("-").isdigit() and text.startswith("-") else None
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus) and isinstance(node.expression, cst.Integer):
        return -int(node.expression.value)
    return None


def _compares_of(node: cst.CSTNode, left: cst.Call):
    """The ``left == x`` / ``left != x`` comparisons (one operator) inside ``node``."""
    if (
        isinstance(node, cst.Comparison)
        and node.left is left
        and len(node.comparisons) == 1
        and isinstance(node.comparisons[0].operator, (cst.Equal, cst.NotEqual))
    ):
        yield node
    for child in node.children:
        yield from _compares_of(child, left)


def _rank_reads(analysis):
    """Calls reading a rank, except in the lines AC016 removes (``torch.cuda.set_device(int(os.environ[...]))``)."""
    for site in analysis.facts.calls:
        if rank_of(analysis, site.node) is not None and not _is_setup_line(analysis, site.statement):
            yield site


def _is_setup_line(analysis, statement) -> bool:
    if not (isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1):
        return False
    line = statement.body[0]
    return isinstance(line, cst.Expr) and isinstance(line.value, cst.Call) and analysis.qualify(line.value.func) in _SETUP


















def _calls_in(node: cst.CSTNode):
    if isinstance(node, cst.Call):
        yield node
    for child in node.children:
        yield from _calls_in(child)
