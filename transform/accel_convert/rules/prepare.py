"""AC002 prepare."""

from __future__ import annotations

import builtins
import sys

import libcst as cst

from accel_convert.analysis import symbols
from accel_convert.analysis.batch_sources import hand_made_batches
from accel_convert.analysis.imports import dotted_name
from accel_convert.analysis.roles import (
    LOADER,
    MODEL,
    OPTIMIZER,
    Analysis,
    connected,
    factory_returns,
    handed_back,
    optimizer_parameter_receivers,
    parameter_receivers,
)
from accel_convert.analysis.share_sums import shares_divided_by_whole
from accel_convert.analysis.traverse import Walker, free_names
from accel_convert.edits.plan import Pending, ReplaceWith, SwapKeyword
from accel_convert.model import Diagnostic
from accel_convert.rules.base import Rule

_MAX_LINE = 100


class Prepare(Rule):
    """Pass the model, optimizer, data loaders and per-step LR scheduler through `accelerator.prepare`.

    ## Why
    `prepare` wraps each object for the run's device and process count: the model is moved (and wrapped for
    data-parallel training), the optimizer steps through the precision and sharding logic, each data loader yields
    only this process's share of the batches, already on the right device.

    ## What it does
    One statement `model, optimizer, train_loader, ... = accelerator.prepare(model, optimizer, train_loader, ...)`
    in the scope that creates the optimizer, right after the last of these objects is created and before the
    training loop. Objects are found by what they are, never by their names: an optimizer is a `torch.optim`
    class however it was imported (`optim.Adam`, `from torch.optim import Adam as A`, `from torch.optim import *`);
    a model is what feeds `.parameters()` to an optimizer, or an `nn.Module` subclass of the file (or a
    `torchvision` model) that is called in a loop over a data loader; a data loader is a
    `torch.utils.data.DataLoader`, or a subclass of it in the file that keeps its way of iterating (a subclass that
    defines `__iter__`, `__len__` or `__next__` is not prepared: `prepare` rebuilds a loader from its dataset and
    settings, and would lose that). Attributes count (`self.model`, `self.optimizer` in a trainer class), and
    objects handed to helper functions (`train(model, loader, optimizer)`) are prepared where they are created.

    Objects that a function of the file builds and returns are followed to the call that receives them, also
    through tuples: with `dataset, model, optimizer = load_objects()` and `loader = make_loader(dataset)` (whose
    body is `return DataLoader(...)`), `prepare` goes after the last of these calls, in the caller, where the
    objects are in scope; a `.to(device)` of the model inside the factory goes like any other move of a prepared
    model (unless the factory uses the model in a loop before returning it). An optimizer built from a model passed in (`optimizer = make_optimizer(model)`) prepares the caller's
    `model`. This holds for a module-level function (not a method) that does not call itself, ends with a
    `return`, and returns the same expressions at every `return`; the optimizer is followed out of it only when the
    function is called once and its `step()` runs after the call, not inside the function.

    A loop before the prepare statement that only reads a loader (a peek at one batch to size the first layer,
    statistics for normalisation) or the model's parameters (printing their shapes, initialising them) does not
    stop the conversion: it runs on the objects as they were made, in every process, as in the original, and the
    device moves of its batches stay (they are not batches of the prepared loader).

    An LR scheduler is prepared only when it is stepped inside the loop over batches: a prepared scheduler steps
    once per process on each call (it expects per-batch stepping), so a scheduler stepped once per epoch is left
    unprepared and keeps stepping the optimizer's learning rate exactly as before.

    After `prepare`, the model may be a `DistributedDataParallel` wrapper, which has none of the model's own
    methods and attributes: reads such as `model.decode(z)` or `model.latent_dim` after the prepare statement
    (and in helpers that receive the model) go through `accelerator.unwrap_model(model)`; `train()`, `eval()`,
    `parameters()`, `state_dict()` and the other `nn.Module` methods the wrapper answers stay as they are.

    A model wrapped by hand in `nn.DataParallel` or `DistributedDataParallel` is unwrapped by AC017.

    A prepared model with several outputs, of which one call discards some (`real_pred, _, _ = discriminator(x)`)
    and another call of the same width keeps them (`_, label, code = discriminator(z)`), as in InfoGAN: each
    backward then reaches only the heads behind the outputs it uses, and `DistributedDataParallel` stops at the
    next step ("parameters that were not used in producing loss"). The accelerator is created with
    `kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)]` (one process needed nothing; the
    option costs one more pass over the autograd graph per step, and applies to every prepared model). The same
    output discarded at every call (an RNN's `output, _ = rnn(x)`) changes nothing, nor does a file that wraps its
    model in `DistributedDataParallel` itself: its own options are carried over by AC017.

    The optimizer's parameters may come through a name: with
    `params = list(decoder.parameters()) + list(encoder.fc.parameters())` and `optim.Adam(params)`, both `decoder`
    and `encoder` are models to prepare.

    A `DistributedSampler` in a prepared loader would shard the data a second time: it is replaced by the
    loader's `shuffle=` (carrying the sampler's `shuffle` setting over), and the sampler with its `set_epoch`
    calls is removed when nothing else uses it; `loader.sampler.set_epoch(epoch)` becomes
    `loader.set_epoch(epoch)` (the prepared loader passes the epoch on). This applies inside a factory too, when
    every loader it returns is prepared.

    **Unsafe** (in ruff's sense): under several processes each one sees only its share of every prepared loader,
    so per-epoch sums and counts computed in the loop cover that share.

    ## Diagnostics
    - a model of which the optimizer gets only some sub-modules' parameters (`encoder.fc` above), when the file
      freezes nothing with `requires_grad_(False)`: parameters that get no gradient (used under `torch.no_grad()`)
      make `DistributedDataParallel` fail at the second step under several processes. Freeze them, or create the
      accelerator with `kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)]`.
    - a training loop that makes its batches by hand instead of iterating a loader: it slices tensors by the
      loop's index (`for i in range(0, len(X), bs): xb = X[i:i + bs]`, also `ids[:, i:i + n]` or a permutation
      `perm[i:i + bs]`), or the model gets what a function of the file returns (`xb, yb = get_batch("train")`,
      `model(*get_batch(...))`) or a method named like one (`data.next_batch()`). Nothing shards such batches:
      under several processes every process trains on all the data (or on the same random batches, drawn from the
      same seed), so N processes do the work of one. Put the data in a `Dataset` and a `DataLoader`, which
      `prepare` shards, or take this process's share with `accelerator.process_index` and
      `accelerator.num_processes`. Not reported where the loop holding the step is inside a loop over a loader,
      or in a function that is given batches or called inside one.
    - a training loop that iterates something other than a `DataLoader` this file creates (a loader returned by
      `get_loader(...)` from another module, or by a function of the file that the rule does not follow: one with
      `return` statements that differ, that calls itself, or is called through an attribute; a generator, or a
      `tqdm` bar over one): it is not prepared, so every process goes through all of its batches. The message
      names the call the iterable comes from, where the file assigns it from one.
    - a sum accumulated (`+=`) in a training loop over a prepared loader and divided by the size of the whole
      data set, `train_loss / len(train_loader.dataset)` (or `/=`): each process sums only its share of the
      batches, so under N processes the printed value is 1/N of the one-process one. Sum it over the processes
      first (`accelerator.reduce(torch.tensor(train_loss, device=accelerator.device), "sum").item()`) or divide by
      the samples this process saw. `len(train_loader)`, this process's number of batches, is right as it is.
    - a prepared model or data loader passed, after the prepare statement, to a function imported from another
      module that is neither the standard library nor a well-known library (most likely one of the project's own
      modules: `from evaluate import evaluate`, then `evaluate(model, val_loader)`; also a relative import, and a
      name no import binds in a file that does `from utils import *` of such a module). The
      converter does not see that function's body: under several processes it gets the DistributedDataParallel
      wrapper, on which the model's own attributes and methods (`net.n_classes`) need
      `accelerator.unwrap_model(model)`, and only this process's share of a loader's batches, so the metrics it
      computes must be gathered (`accelerator.gather_for_metrics`). One diagnostic per call, naming what it gets;
      pass `accelerator.unwrap_model(model)` or adapt that module too. Calls to functions of the file (followed
      like the rest of it), builtins, methods, or libraries such as `torchinfo.summary(model)` and
      `copy.deepcopy(model)` get none.
    - a loop that runs the model, an optimizer or a scheduler (calls it, calls one of its methods, or passes it to
      a function) before the last object `prepare` takes is created (a baseline evaluation before the optimizer
      exists): a prepare after that object would come too late for the loop, so none is added, and nothing that
      only a prepare makes right is converted (every device move, `backward` and metric stays; AC004 says so
      in a note). The diagnostic is on the loop and names the object to create before it. A call there of a
      function of the file that has a loop and is handed one of them (`train_model(model, optimizer, loader)`
      before the test loader is made) counts the same; the diagnostic is then on the call.
    - a model class that creates its optimizer from `self.parameters()` and steps it in its own methods (the
      module trains itself): `prepare` cannot be inserted into the class, so the whole file is left unchanged.

    ## Example
    ```python
    train_loader = DataLoader(train_set, batch_size=64, shuffle=True)
    model = Net()
    optimizer = optim.Adam(model.parameters(), lr=1e-3)

    for epoch in range(epochs):
        for data, target in train_loader:
            ...
    ```
    becomes
    ```python
    train_loader = DataLoader(train_set, batch_size=64, shuffle=True)
    model = Net()
    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)

    for epoch in range(epochs):
        for data, target in train_loader:
            ...
    ```
    """

    code = "AC002"
    name = "prepare"
    summary = "Pass the model, optimizer, data loaders and per-step LR scheduler through `accelerator.prepare`."
    guarded_by = (
        "unprepared-loader", "sampler-under-prepare", "prepare-arg-unbound", "backward-unwrapped", "move-of-unprepared"
    )
    unsafe = True

    def declines(self, analysis):
        return self_training_models(analysis)

    def plan(self, context, plan):
        decisions = context.decisions
        preparation = decisions.preparation
        if preparation is None:
            return
        analysis = context.analysis
        owner = context.access.owner
        accelerator = context.access.expression(owner)
        objects = [(item.key, item.role, item.creation) for item in preparation.objects]
        anchor, location = preparation.anchor, preparation.location
        block_id, index = preparation.position
        keys = [key for key, _, _ in objects]
        statement = _prepare_statement(keys, accelerator, context.indentation(location), context.module.default_indent)
        edit = plan.statement(anchor)
        if preparation.after:
            edit.after.append(statement)
        else:
            edit.before.append(statement)
        context.use(owner, location)
        plan.changes.append(context.change(self.code, anchor, f"prepare {', '.join(keys)} with `{accelerator}.prepare`"))
        for key, role, assignment in objects:
            if role == LOADER and assignment is not None:
                binding = analysis.binding(owner, key)
                created = _loader_creation(analysis, decisions.prepared, binding, assignment)
                if created is not None and _drop_distributed_sampler(context, plan, *created, self.code):
                    _forward_sampler_epochs(context, plan, binding, self.code)
        models = [analysis.binding(owner, key) for key, role, _ in objects if role == MODEL]
        _unwrap_model_attributes(context, plan, self.code, models, (block_id, index))
        _report_partly_optimized_models(context, plan, self.code, objects)
        _allow_unused_heads(context, plan, self.code, objects)
        _report_unprepared_batches(context, plan, self.code)
        _report_shares_divided_by_whole(context, plan, self.code)
        _report_foreign_calls(context, plan, self.code, objects, (block_id, index))


# top-level modules of libraries (beyond the standard library) whose functions know what to do with a prepared
# model or loader, or never receive one: a call into any other imported module goes into the user's own code
_LIBRARIES = frozenset(
    "torch torchvision torchaudio torchtext torchdata torchmetrics torchinfo torchsummary thop ptflops fvcore numpy"
    " scipy pandas sklearn matplotlib seaborn PIL cv2 tqdm wandb mlflow tensorboard tensorboardX comet_ml neptune"
    " clearml transformers tokenizers timm einops accel accelerate lightning pytorch_lightning deepspeed apex peft"
    " diffusers safetensors huggingface_hub onnx onnxruntime yaml hydra omegaconf gym gymnasium tiktoken"
    " sentencepiece nltk spacy h5py ema_pytorch torch_ema opacus captum functorch kornia albumentations monai".split()
)


def _report_foreign_calls(context, plan, code, objects, prepared_at: tuple[int, int]) -> None:
    """``evaluate(model, val_loader)`` with ``evaluate`` imported from the user's own module: the converter does not
    see its body, which gets the DistributedDataParallel wrapper and this process's share of the batches."""
    analysis = context.analysis
    owner = context.access.owner
    reach = {}
    for key, role, _ in objects:
        if role in (MODEL, LOADER):
            for binding in connected(analysis, analysis.binding(owner, key)):
                reach.setdefault(binding, role)
    relative = _relative_imports(analysis.facts.module)
    block_id, index = prepared_at
    for site in analysis.facts.calls:
        module = _user_module(analysis, site, relative)
        if module is None:
            continue
        if site.scope is owner:
            after = [position > index for block, position in site.location if block == block_id]
            if not after or not after[0]:
                continue  # before the prepare statement: the plain objects
        passed = {}
        for argument in site.node.args:
            key = dotted_name(argument.value) if not argument.star else None
            role = reach.get(analysis.binding(site.scope, key)) if key is not None else None
            if role is not None:
                passed.setdefault(key, role)
        if passed:
            accelerator = context.access.expression(site.scope)
            message = _foreign_call_message(context.code(site.node.func), module, passed, accelerator or "accelerator")
            if accelerator is None:
                message += f" (`{site.scope.name}` cannot reach the accelerator: pass it in)"
            plan.diagnostics.append(context.diagnostic(code, site.node, message, site.statement))


def _user_module(analysis: Analysis, site, relative: dict[str, str]) -> str | None:
    """The module a called function is imported from, when it is neither the standard library nor a known library
    (so most likely a module of the user's project); None for builtins, methods and functions of this file."""
    func = site.node.func
    key = dotted_name(func)
    if key is None:
        return None
    root = key.split(".")[0]
    facts = analysis.facts
    if root in facts.functions or root in facts.classes or root in facts.module_scope.assigned:
        return None
    if analysis.binding(site.scope, root)[0] is not facts.module_scope:
        return None  # a local name
    if root in relative:
        return relative[root]
    qualified = analysis.qualify(func)
    if qualified is None:
        # a name no import binds, with ``from utils import *`` of the user's own module(s): it most likely comes
        # from one of them (never a builtin)
        stars = [m for m in analysis.imports.star_modules if _is_user_module(m)]
        if not stars or root in dir(builtins) or analysis.binding(site.scope, root)[0] is not facts.module_scope:
            return None
        return "` or `".join(stars)  # quoted by the message: `datasets` or `utils`
    top = qualified.split(".")[0]
    if top in sys.stdlib_module_names or top in _LIBRARIES:
        return None
    return qualified.rpartition(".")[0] or qualified


def _is_user_module(module: str) -> bool:
    top = module.lstrip(".").split(".")[0]
    return bool(top) and top not in sys.stdlib_module_names and top not in _LIBRARIES


def _relative_imports(module: cst.Module) -> dict[str, str]:
    """Names bound at the top of the file by ``from .x import f`` -> ``.x``."""
    names = {}
    for line in module.body:
        if not isinstance(line, cst.SimpleStatementLine):
            continue
        for small in line.body:
            if isinstance(small, cst.ImportFrom) and small.relative and not isinstance(small.names, cst.ImportStar):
                base = "." * len(small.relative) + (dotted_name(small.module) if small.module is not None else "")
                for alias in small.names:
                    names[(alias.asname.name.value if alias.asname else alias.name.value)] = base
    return names


def _foreign_call_message(function: str, module: str, passed: dict[str, str], accelerator: str) -> str:
    """What a function of another module receives from the prepare statement, and what to do about it."""
    models = [key for key, role in passed.items() if role == MODEL]
    loaders = [key for key, role in passed.items() if role == LOADER]
    received = []
    if models:
        received.append(
            f"the prepared {_listed(models)}, which under several processes is a DistributedDataParallel wrapper (the "
            f"model's own attributes and methods need `{accelerator}.unwrap_model({models[0]})`)"
        )
    if loaders:
        received.append(
            f"the prepared {_listed(loaders)}, which yields only this process's share of the batches (metrics "
            f"computed from it must be gathered with `{accelerator}.gather_for_metrics`)"
        )
    advice = f"pass `{accelerator}.unwrap_model({models[0]})` where it needs the model itself, or " if models else ""
    return (
        f"`{function}(...)` comes from the module `{module}`, which accel-convert does not see: it receives "
        f"{' and '.join(received)}; {advice}adapt `{module}` to several processes too"
    )


def _listed(keys: list[str]) -> str:
    return ", ".join(f"`{key}`" for key in keys)


def _report_partly_optimized_models(context, plan, code, objects) -> None:
    """``optim.Adam(encoder.head.parameters())`` with ``encoder`` prepared whole: DistributedDataParallel stops at
    the next step when the parameters left out get no gradient, unless the script freezes them."""
    analysis = context.analysis
    if _freezes_parameters(analysis):
        return
    models = [key for key, role, _ in objects if role == MODEL]
    parts: dict[str, tuple[list[str], object]] = {}
    whole = set()
    for _, role, optimizer in objects:
        if role != OPTIMIZER or optimizer is None or not isinstance(optimizer.value, cst.Call):
            continue
        for receiver in optimizer_parameter_receivers(analysis, optimizer.scope, optimizer.value):
            key = dotted_name(receiver)
            model = next((m for m in models if key is not None and (key == m or key.startswith(m + "."))), None)
            if model is None:
                continue
            if key == model or (key == f"{model}.module" and _wraps_by_hand(analysis)):  # a removed DataParallel's module
                whole.add(model)
            else:
                parts.setdefault(model, ([], optimizer))[0].append(key)
    for model, (keys, optimizer) in parts.items():
        if model in whole:
            continue
        named = ", ".join(f"`{key}`" for key in dict.fromkeys(keys))
        message = (
            f"`{model}` is prepared whole, but the optimizer gets only the parameters of {named}: under several "
            f"processes DistributedDataParallel stops at the second step if the other parameters of `{model}` get no "
            "gradient (e.g. used under `torch.no_grad()`): freeze those with `requires_grad_(False)`, or create the "
            "accelerator with `kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)]`"
        )
        plan.diagnostics.append(context.diagnostic(code, optimizer.value, message, optimizer.statement))


def _allow_unused_heads(context, plan, code, objects) -> None:
    """``real, _, _ = D(x)`` where ``D.forward`` returns ``self.adv(h), self.aux(h), self.latent(h)``: the backward of
    that step reaches neither ``aux`` nor ``latent``, and DistributedDataParallel stops at the next step; the
    accelerator is created with ``find_unused_parameters=True``, as the original (one process) needs nothing.
    Left to the script when it wraps the model in ``DistributedDataParallel`` itself (AC017 carries its options)."""
    analysis = context.analysis
    if any(analysis.qualify(site.node.func) in symbols.DDP_WRAPPERS for site in analysis.facts.calls):
        return
    heads = {}
    for key, role, creation in objects:
        if role == MODEL and creation is not None:
            found = _output_heads(analysis, analysis.strip(creation.value, creation.scope))
            if found is not None:
                heads[key] = found
    for site in analysis.facts.calls:
        key = dotted_name(site.node.func)
        kept = _unpacked_outputs(site) if key in heads else None
        if kept is None or len(kept) != len(heads[key]):
            continue
        used = set().union(*(modules for modules, keep in zip(heads[key], kept) if keep))
        left = sorted(set().union(*(modules for modules, keep in zip(heads[key], kept) if not keep)) - used)
        if not left:
            continue
        argument = f"kwargs_handlers=[{symbols.DDP_KWARGS}(find_unused_parameters=True)]"
        context.accelerator_arguments.append((argument, set()))
        context.accelerator_imports.append(symbols.DDP_KWARGS)
        named = ", ".join(f"`self.{name}`" for name in left)
        message = (
            f"`{context.code(site.statement).strip()}` discards the outputs of {named}: that backward reaches no "
            f"parameter of theirs, which DistributedDataParallel allows only with `Accelerator({argument})`"
        )
        plan.changes.append(context.change(code, site.node, message))
        return


def _output_heads(analysis: Analysis, made: cst.BaseExpression) -> list[set[str]] | None:
    """For a model made by ``Net(...)``, a class of the file whose ``forward`` ends in one ``return a, b, ...``: the
    sub-modules (``self.<name>(...)``) each output is computed with, directly or through the names assigned in
    ``forward`` that it reads (and those they read); None otherwise."""
    if not isinstance(made, cst.Call) or not isinstance(made.func, cst.Name):
        return None
    info = analysis.facts.classes.get(made.func.value)
    forward = info.methods.get("forward") if info is not None else None
    returned = analysis.facts.returns.get(forward, []) if forward is not None else []
    if len(returned) != 1 or not isinstance(returned[0], cst.Tuple):
        return None
    assigned: dict[str, set[str]] = {}
    for assignment in analysis.facts.assignments:  # in source order: what a name is computed from, transitively
        if assignment.scope is forward:
            value = assignment.value
            modules = _submodule_calls(value).union(*(assigned.get(name, ()) for name in free_names(value)))
            for target in assignment.targets:
                if isinstance(target, cst.Name):
                    assigned.setdefault(target.value, set()).update(modules)
    return [
        _submodule_calls(element.value).union(*(assigned.get(name, ()) for name in free_names(element.value)))
        for element in returned[0].elements
    ]


def _submodule_calls(node: cst.CSTNode) -> set[str]:
    """``name`` of every ``self.name(...)`` call in ``node``."""
    found: set[str] = set()

    class Calls(Walker):
        def visit_Call(self, call: cst.Call) -> None:
            func = call.func
            if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self":
                found.add(func.attr.value)

    Calls().walk(node)
    return found


def _unpacked_outputs(site) -> tuple[bool, ...] | None:
    """For ``a, _, c = model(x)``: which outputs are kept, ``(True, False, True)``; None for any other statement."""
    statement = site.statement
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return None
    assign = statement.body[0]
    if not isinstance(assign, cst.Assign) or assign.value is not site.node or len(assign.targets) != 1:
        return None
    target = assign.targets[0].target
    if not isinstance(target, (cst.Tuple, cst.List)) or any(isinstance(e, cst.StarredElement) for e in target.elements):
        return None
    return tuple(not (isinstance(e.value, cst.Name) and e.value.value == "_") for e in target.elements)


def _wraps_by_hand(analysis: Analysis) -> bool:
    """The file wraps a model in ``nn.DataParallel`` or ``DistributedDataParallel`` (AC017 removes the wrapper, so
    ``model.module`` is the model itself)."""
    return any(analysis.qualify(site.node.func) in symbols.MODEL_WRAPPERS for site in analysis.facts.calls)


def _freezes_parameters(analysis: Analysis) -> bool:
    """``p.requires_grad = False`` or ``x.requires_grad_(False)`` anywhere in the file."""
    for site in analysis.facts.calls:
        func = site.node.func
        if isinstance(func, cst.Attribute) and func.attr.value == "requires_grad_" and site.node.args:
            if isinstance(site.node.args[0].value, cst.Name) and site.node.args[0].value.value == "False":
                return True
    return any(
        isinstance(target, cst.Attribute) and target.attr.value == "requires_grad"
        for assignment in analysis.facts.assignments
        for target in assignment.targets
    )


def _report_unprepared_batches(context, plan, code) -> None:
    """The loop that steps the optimizer iterates something that is not a DataLoader of this file (a loader from
    another module's ``get_loader(...)``, a generator): it is not sharded, every process sees all of it."""
    analysis = context.analysis
    reach = connected(analysis, analysis.anchor_binding)
    reported = set()
    for site in analysis.facts.calls:
        func = site.node.func
        if not (isinstance(func, cst.Attribute) and func.attr.value == "step" and site.loops):
            continue
        loop = site.loops[-1]
        stepped = [func.value, *(arg.value for arg in site.node.args if arg.keyword is None)]  # scaler.step(optimizer)
        keys = [key for key in map(dotted_name, stepped) if key is not None]
        if not any(analysis.binding(site.scope, key) in reach for key in keys) or id(loop) in reported:
            continue
        made = hand_made_batches(analysis, site)
        if made is not None:
            if id(made.loop) not in reported:
                reported.add(id(made.loop))
                plan.diagnostics.append(context.diagnostic(code, made.node, _hand_made_message(context, made)))
            continue
        iterated = _iterated_name(analysis, loop)
        if iterated is None or loop in analysis.batch_loops or analysis.role_of(loop.scope, iterated) is not None:
            continue
        reported.add(id(loop))
        name = context.code(iterated)
        message = (
            f"the training loop iterates `{name}`, which is not prepared ({_why_unknown(context, loop.scope, iterated)}), "
            f"so every process goes through all of it; if it is a DataLoader, pass `{name}` through "
            "`accelerator.prepare` as well"
        )
        plan.diagnostics.append(context.diagnostic(code, loop.node.iter, message, loop.node))


def _report_shares_divided_by_whole(context, plan, code) -> None:
    """``train_loss / len(train_loader.dataset)`` after summing over a prepared loader in a training loop: each
    process sums its share, the divisor is the whole data set."""
    analysis = context.analysis
    prepared = context.decisions.prepared
    backward_loops = {id(loop) for site in analysis.facts.method_calls("backward") for loop in site.loops}
    for loop, loaders in analysis.batch_sources.items():
        iterated = _iterated_name(analysis, loop)
        key = dotted_name(iterated) if iterated is not None else None
        if key is None or id(loop) not in backward_loops or not loaders & prepared:
            continue
        for found in shares_divided_by_whole(loop, key):
            message = (
                f"`{context.code(found.division).strip()}` divides `{found.total}`, summed over this process's share "
                f"of the prepared `{key}`, by the size of the whole data set: under several processes it is 1/N of "
                f"the one-process value; sum it over the processes first "
                f"(`accelerator.reduce(torch.tensor({found.total}, device=accelerator.device), \"sum\").item()`) or "
                "divide by the number of samples this process saw"
            )
            plan.diagnostics.append(context.diagnostic(code, found.division, message))


def _hand_made_message(context, made) -> str:
    """What a training loop's hand-made batches do under several processes, and what to do instead."""
    shown = context.code(made.node)
    shown = f"`{shown}`" if len(shown) <= 60 and "\n" not in shown else "this expression"
    if made.kind == "slice":
        source = f"slices {shown} by the loop's index"
        share = "slice this process's share (`accelerator.process_index`, `accelerator.num_processes`)"
    else:
        source = f"gets them from {shown}"
        share = "make that function return this process's share (`accelerator.process_index`, `accelerator.num_processes`)"
    return (
        f"the training loop makes its batches by hand (it {source}), not from a DataLoader: nothing shards them, "
        "so under several processes every process trains on all the data (or draws the same random batches); "
        "put the data in a `Dataset` and a `DataLoader`, which `accelerator.prepare` shards, or " + share
    )


def _why_unknown(context, scope, iterated: cst.BaseExpression) -> str:
    """Why the converter cannot tell what ``iterated`` is: the call it comes from, where one assigns it."""
    analysis = context.analysis
    key = dotted_name(iterated)
    upstream = connected(analysis, analysis.binding(scope, key), upstream=True) if key is not None else set()
    for assignment in analysis.facts.assignments:
        value = assignment.value
        if not isinstance(value, cst.Call) or not any(
            dotted_name(target) is not None and analysis.binding(assignment.scope, dotted_name(target)) in upstream
            for target in assignment.targets
        ):
            continue
        function = context.code(value.func)
        if isinstance(value.func, cst.Name) and value.func.value in analysis.facts.functions:
            return f"it comes from `{function}(...)`, a function of this file whose returns AC002 does not follow"
        if isinstance(value.func, cst.Name) and value.func.value in analysis.facts.classes:
            return (
                f"it comes from `{function}(...)`, a class of this file that changes how it iterates (`__iter__`, "
                "`__len__`), which the prepared loader would not keep"
            )
        if analysis.qualify(value.func) is not None or isinstance(value.func, cst.Name):
            return f"it comes from `{function}(...)`, which is not defined in this file"
        return f"it comes from `{function}(...)`, a call through an attribute, which AC002 does not follow"
    return "it is not a `torch.utils.data.DataLoader` that this file assigns to a name"


def _iterated_name(analysis: Analysis, loop) -> cst.BaseExpression | None:
    """``x`` for ``for ... in x``, ``enumerate(x)``, ``tqdm(x)`` or ``bar`` assigned ``tqdm(x)``, when ``x`` is a
    (dotted) name."""
    if not isinstance(loop.node, cst.For):
        return None
    node = loop.node.iter
    followed = set()
    while True:
        if isinstance(node, cst.Call):
            if not (_is_iteration_wrapper(analysis, node) and node.args and node.args[0].keyword is None):
                return None
            node = node.args[0].value
            continue
        key = dotted_name(node)
        if key is None:
            return None
        binding = analysis.binding(loop.scope, key)
        wrapper = next(
            (
                a.value
                for a in analysis.facts.assignments
                if a.scope is loop.scope
                and len(a.targets) == 1
                and dotted_name(a.targets[0]) == key
                and isinstance(a.value, cst.Call)
                and _is_iteration_wrapper(analysis, a.value)
            ),
            None,
        )
        if wrapper is None or analysis.roles.get(binding) is not None or key in followed:
            return node
        followed.add(key)
        node = wrapper


def _is_iteration_wrapper(analysis: Analysis, call: cst.Call) -> bool:
    """``enumerate(...)``, ``iter(...)`` or a tqdm progress bar."""
    if isinstance(call.func, cst.Name) and call.func.value in ("enumerate", "iter"):
        return True
    return (analysis.qualify(call.func) or "").startswith("tqdm.")


# what a prepared (possibly DistributedDataParallel-wrapped) model answers like the model itself
_WRAPPER_API = frozenset(
    "train eval parameters named_parameters buffers named_buffers children named_children modules named_modules"
    " state_dict load_state_dict zero_grad to cuda cpu float double half bfloat16 apply requires_grad_ training"
    " forward module register_forward_hook register_forward_pre_hook register_full_backward_hook".split()
)


def _unwrap_model_attributes(context, plan, code, models, prepared_at: tuple[int, int]) -> None:
    """``model.decode(z)``, ``model.latent_dim`` after prepare -> ``accelerator.unwrap_model(model).decode(z)``:
    the prepared model may be a DistributedDataParallel wrapper, which has neither."""
    analysis = context.analysis
    owner = context.access.owner
    reach = set()
    for binding in models:
        reach |= connected(analysis, binding)
    block_id, index = prepared_at
    for read in analysis.facts.attribute_reads:
        if read.node.attr.value in _WRAPPER_API or read.statement is None:
            continue
        key = dotted_name(read.node.value)
        if key is None or analysis.binding(read.scope, key) not in reach:
            continue
        if read.scope is owner:
            after = [position > index for block, position in read.location if block == block_id]
            if not after or not after[0]:
                continue  # before the prepare statement: still the plain model
        accelerator = context.access.expression(read.scope)
        attribute = f"{key}.{read.node.attr.value}"
        if accelerator is None:
            message = f"`{attribute}` may be missing on the prepared model: `{read.scope.name}` cannot reach the accelerator"
            plan.diagnostics.append(context.diagnostic(code, read.node, message, read.statement))
            continue
        plan.expression(read.node.value, ReplaceWith(f"{accelerator}.unwrap_model({key})"), read.statement)
        plan.changes.append(
            context.change(code, read.node, f"`{attribute}` read through `{accelerator}.unwrap_model`", read.statement)
        )


def _loader_creation(analysis: Analysis, prepared: set, binding, assignment):
    """(the ``DataLoader(...)`` call, its scope, its statement) of a prepared loader: where the owner assigns it, or,
    for a loader a factory of the file returns into prepared bindings only, in that factory; None otherwise."""
    origin = analysis.origins.get(binding, binding)
    if origin == binding:
        return assignment.value, assignment.scope, assignment.statement
    if origin not in prepared and origin not in handed_back(analysis, prepared, used_before=True):
        return None
    created = analysis.creations.get(origin)
    if created is not None:
        return created.value, created.scope, created.statement
    function, key = origin
    sites = [site for site in analysis.facts.return_sites if site.scope is function]
    elements = factory_returns(analysis, function)
    if len(sites) != 1 or elements is None or not key.startswith("return["):
        return None
    return elements[int(key[len("return[") : -1])], function, sites[0].statement


def _drop_distributed_sampler(context, plan, loader, scope, loader_line, code) -> bool:
    """``DataLoader(ds, sampler=DistributedSampler(ds, shuffle=s))`` -> ``DataLoader(ds, shuffle=s)``; True when
    done.

    A prepared loader is sharded across processes already; a distributed sampler left in it would shard it twice.
    """
    analysis = context.analysis
    if not isinstance(loader, cst.Call):
        return False
    argument = next((a for a in loader.args if a.keyword is not None and a.keyword.value == "sampler"), None)
    if argument is None:
        return False
    sampler, statement, name = argument.value, None, None
    if isinstance(sampler, cst.Name):
        name = sampler.value
        binding = analysis.binding(scope, name)
        definition = next(
            (
                a
                for a in analysis.facts.assignments
                if len(a.targets) == 1
                and isinstance(a.targets[0], cst.Name)
                and analysis.binding(a.scope, a.targets[0].value) == binding
            ),
            None,
        )
        if definition is None:
            return False
        sampler, statement = definition.value, definition.statement
    if not (isinstance(sampler, cst.Call) and analysis.qualify(sampler.func) in symbols.DISTRIBUTED_SAMPLERS):
        return False
    shuffle = next((a.value for a in sampler.args if a.keyword is not None and a.keyword.value == "shuffle"), None)
    swap = SwapKeyword("sampler", "shuffle", context.code(shuffle) if shuffle is not None else "True")
    if any(a.keyword is not None and a.keyword.value == "shuffle" for a in loader.args):
        plan.expression(loader, _WithoutKeyword("shuffle"), loader_line)  # the sampler's setting wins
    plan.expression(loader, swap, loader_line)
    plan.changes.append(context.change(code, loader, "`DistributedSampler` replaced by `shuffle`: prepare shards the loader"))
    if statement is None:
        return True
    set_epoch_lines = [
        site.statement
        for site in analysis.facts.calls
        if isinstance(site.node.func, cst.Attribute)
        and site.node.func.attr.value == "set_epoch"
        and isinstance(site.node.func.value, cst.Name)
        and site.node.func.value.value == name
        and isinstance(site.statement, cst.SimpleStatementLine)
        and len(site.statement.body) == 1
        and isinstance(site.statement.body[0], cst.Expr)
    ]
    kept = {id(statement), id(loader_line), *map(id, set_epoch_lines)}
    other_uses = [
        load
        for load in analysis.facts.loads
        if load.name == name
        and analysis.binding(load.scope, name) == analysis.binding(scope, name)
        and not any(index >= 0 and id(analysis.facts.statement_at(block, index)) in kept for block, index in load.location[-1:])
    ]
    if other_uses:
        return True
    for line in [statement, *set_epoch_lines]:
        plan.statement(line).remove = True
    return True


def _forward_sampler_epochs(context, plan, loader, code) -> None:
    """``loader.sampler.set_epoch(epoch)`` -> ``loader.set_epoch(epoch)`` once the distributed sampler is gone: the
    prepared loader takes the epoch (its own sampler has no ``set_epoch``)."""
    analysis = context.analysis
    reach = connected(analysis, loader)
    for site in analysis.facts.calls:
        func = site.node.func
        if not (isinstance(func, cst.Attribute) and func.attr.value == "set_epoch"):
            continue
        owner = func.value
        if not (isinstance(owner, cst.Attribute) and owner.attr.value == "sampler"):
            continue
        key = dotted_name(owner.value)
        if key is None or analysis.binding(site.scope, key) not in reach:
            continue
        plan.expression(owner, ReplaceWith(key), site.statement)
        plan.changes.append(context.change(code, owner, f"`{key}.sampler.set_epoch` -> `{key}.set_epoch`", site.statement))


class _WithoutKeyword:
    """Drop the keyword argument ``name=...`` from a call."""

    def __init__(self, name: str) -> None:
        self.name = name

    def apply(self, call: cst.Call) -> cst.Call:
        args = [a for a in call.args if a.keyword is None or a.keyword.value != self.name]
        if args and call.args[-1] not in args:
            args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        return call.with_changes(args=args)


def _prepare_statement(keys: list[str], accelerator: str, indent: str, unit: str) -> cst.BaseStatement:
    names = ", ".join(keys)
    line = f"{names} = {accelerator}.prepare({names})"
    if len(indent) + len(line) > _MAX_LINE:
        # continuation lines are written relative to the block's indentation
        line = f"{names} = {accelerator}.prepare(\n{unit}{names}\n)"
    return cst.parse_statement(line + "\n")


def self_training_models(analysis) -> list:
    """AC002 diagnostics for model classes that build an optimizer from ``self.parameters()`` and step it themselves
    (minimalRL's shape), when the training run is such a class or no other was recognised: preparing ``self`` from
    its own ``__init__`` cannot work, so the file is left as it is. Empty when the file can be converted."""
    anchor = analysis.anchor
    candidates = [anchor] if anchor is not None else _stepped_optimizers(analysis)
    found = {}
    for assignment in candidates:
        scope = assignment.scope
        if scope.self_name is None or scope.class_name not in analysis.model_classes:
            continue
        receivers = parameter_receivers(assignment.value)
        if any(isinstance(r, cst.Name) and r.value == scope.self_name for r in receivers):
            found.setdefault(scope.class_name, assignment)
    return [
        Pending(
            Diagnostic,
            Prepare.code,
            assignment.node,
            f"the model class `{name}` creates its own optimizer from `self.parameters()` and trains itself: nothing "
            "converted (create the optimizer outside the class and prepare both, or prepare them by hand)",
            assignment.statement,
        )
        for name, assignment in found.items()
    ]


def _stepped_optimizers(analysis: Analysis) -> list:
    """The assignments creating an optimizer whose ``step()`` is called somewhere (in a loop or not)."""
    stepped = set()
    for site in analysis.facts.calls:
        func = site.node.func
        key = dotted_name(func.value) if isinstance(func, cst.Attribute) and func.attr.value == "step" else None
        if key is not None:
            stepped.add(analysis.binding(site.scope, key))
    return [
        assignment
        for binding, assignment in analysis.creations.items()
        if analysis.roles.get(binding) == OPTIMIZER and connected(analysis, binding) & stepped
    ]
