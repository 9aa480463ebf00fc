"""``save_state`` / ``load_state``: the whole training state in one directory, to resume a run exactly.

What is saved: every prepared model, optimizer and LR scheduler, the fp16 GradScaler, the objects passed to
``register_for_checkpointing``, and per process the random states (Python, NumPy, torch, CUDA), the position of
every prepared DataLoader (see ``accel.data_position``) and of the accumulation window. The main process writes
the shared files, each process its own ``random_states_<rank>.pkl``; FSDP and DeepSpeed write model and
optimizer through their backend (``save_checkpoint``/``load_checkpoint``). ``accel_checkpoint.json`` lists it all.

The directory appears complete or not at all: everything is written into a hidden temporary directory next to
it, which the main process renames to the final name once every process has finished (an earlier checkpoint
under that name is replaced only then). Both functions contain collectives: call them on every process.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from typing import Any

import torch

from .data_position import capture_global_rng, restore_global_rng
from .model_files import (
    deduplicate_shared,
    read_weights,
    write_json,
    write_weights_file,
)
from .state import DistributedType

MANIFEST = "accel_checkpoint.json"
FORMAT_VERSION = 1
_SHARDED = {DistributedType.FSDP: "fsdp", DistributedType.DEEPSPEED: "deepspeed"}


def _numbered(stem: str, index: int, ext: str) -> str:
    """Hugging Face Accelerate's names: ``optimizer.bin``, ``optimizer_1.bin``, ..."""
    return f"{stem}{'' if index == 0 else f'_{index}'}{ext}"


def check_stateful(obj: Any) -> None:
    """``register_for_checkpointing`` accepts objects with ``state_dict`` and ``load_state_dict``."""
    missing = [m for m in ("state_dict", "load_state_dict") if not callable(getattr(obj, m, None))]
    if missing:
        raise TypeError(f"register_for_checkpointing: a {type(obj).__qualname__} has no {' and no '.join(missing)} "
                        f"method; objects saved with save_state need state_dict() and load_state_dict(state)")


def _plan(accelerator, safe_serialization: bool) -> dict[str, Any]:
    """The manifest: which file holds what (the same on every process)."""
    sharded = _SHARDED.get(accelerator.distributed_type)
    model_ext = ".safetensors" if safe_serialization else ".bin"
    model_stem = "model" if safe_serialization else "pytorch_model"
    return {
        "format_version": FORMAT_VERSION,
        "num_processes": accelerator.num_processes,
        "distributed_type": accelerator.distributed_type.value,
        "sharded_by": sharded,
        "models": [f"{sharded}_model_{i}" if sharded else _numbered(model_stem, i, model_ext)
                   for i in range(len(accelerator._models))],
        "optimizers": [None if sharded else _numbered("optimizer", i, ".bin") for i in range(len(accelerator._optimizers))],
        "schedulers": [_numbered("scheduler", i, ".bin") for i in range(len(accelerator._schedulers))],
        "scaler": "scaler.pt" if accelerator.scaler is not None else None,
        "custom_objects": [f"custom_checkpoint_{i}.pkl" for i in range(len(accelerator._custom_objects))],
        "dataloaders": len(accelerator._dataloaders),
        "random_states": [f"random_states_{rank}.pkl" for rank in range(accelerator.num_processes)],
    }


def _sharded_pairs(accelerator) -> list[tuple[Any, Any]]:
    """(model, optimizer or None) pairs for a sharding backend: the i-th optimizer goes with the i-th model."""
    models, optimizers = accelerator._models, accelerator._optimizers
    if len(optimizers) > len(models) or (len(models) > 1 and len(optimizers) not in (0, len(models))):
        raise ValueError(f"save_state/load_state under {accelerator.distributed_type.value} pair the i-th optimizer "
                         f"with the i-th model; got {len(models)} model(s) and {len(optimizers)} optimizer(s)")
    return [(m, optimizers[i] if i < len(optimizers) else None) for i, m in enumerate(models)]


def _process_state(accelerator) -> dict[str, Any]:
    return {"rng": capture_global_rng(),
            "dataloaders": [loader.position.state_dict() for loader in accelerator._dataloaders],
            "accumulation_step": accelerator.gradient_state.step}


def _write_shared(accelerator, plan: dict[str, Any], tmp: str) -> None:
    """The main process's files: models, optimizers, schedulers, scaler, registered objects."""
    join = lambda name: os.path.join(tmp, name)
    if not plan["sharded_by"]:
        safe = plan["models"] and plan["models"][0].endswith(".safetensors")
        for model, name in zip(accelerator._models, plan["models"]):
            state = accelerator.backend.model_state_dict(model)
            kept, aliases = deduplicate_shared(state) if safe else (state, {})
            write_weights_file(kept, join(name), bool(safe), aliases)
        for optimizer, name in zip(accelerator._optimizers, plan["optimizers"]):
            torch.save(optimizer.state_dict(), join(name))
    for scheduler, name in zip(accelerator._schedulers, plan["schedulers"]):
        torch.save(scheduler.state_dict(), join(name))
    if plan["scaler"]:
        torch.save(accelerator.scaler.state_dict(), join(plan["scaler"]))
    for obj, name in zip(accelerator._custom_objects, plan["custom_objects"]):
        torch.save(obj.state_dict(), join(name))
    write_json(plan, join(MANIFEST))


def save_state(accelerator, output_dir: str | os.PathLike, safe_serialization: bool = True) -> str:
    """Write the training state to ``output_dir`` (see the module docstring); returns its absolute path."""
    if output_dir is None:
        raise ValueError("save_state needs output_dir: the directory to write the checkpoint to")
    final = os.path.abspath(os.path.expanduser(os.fspath(output_dir)))
    main = accelerator.is_main_process
    backend = accelerator.backend
    tmp, error = backend.broadcast_object(_make_temporary_directory(final) if main else None)
    if error:  # raised on every process, so that none waits for the others
        raise FileExistsError(error)
    plan = _plan(accelerator, safe_serialization)
    try:
        if plan["sharded_by"] == "fsdp":
            for (model, optimizer), name in zip(_sharded_pairs(accelerator), plan["models"]):
                backend.save_checkpoint(os.path.join(tmp, name), model, optimizer)
        elif plan["sharded_by"] == "deepspeed":
            for name in plan["models"]:
                backend.save_checkpoint(os.path.join(tmp, name))
        if main:
            _write_shared(accelerator, plan, tmp)
        torch.save(_process_state(accelerator), os.path.join(tmp, plan["random_states"][accelerator.process_index]))
        accelerator.wait_for_everyone()
        if main:
            _publish(tmp, final)
    except BaseException:
        if main:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    accelerator.wait_for_everyone()
    return final


def _make_temporary_directory(final: str) -> tuple[str | None, str | None]:
    """(the hidden temporary directory created next to ``final``, None), or (None, why ``final`` must not be
    replaced: it exists and is not a checkpoint)."""
    if os.path.exists(final) and not os.path.isfile(os.path.join(final, MANIFEST)) and (
            os.path.isfile(final) or os.listdir(final)):
        return None, (f"save_state: {final} exists and is not a checkpoint written by save_state (no {MANIFEST}); "
                      f"expected a new directory or an earlier checkpoint to replace")
    parent, name = os.path.split(final)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{name}.tmp-{uuid.uuid4().hex[:8]}")
    os.mkdir(tmp)
    return tmp, None


def _publish(tmp: str, final: str) -> None:
    """Rename the finished ``tmp`` to ``final``; an earlier checkpoint there is moved aside first, then deleted."""
    if not os.path.exists(final):
        os.rename(tmp, final)
        return
    parent, name = os.path.split(final)
    old = os.path.join(parent, f".{name}.old-{uuid.uuid4().hex[:8]}")
    os.rename(final, old)
    try:
        os.rename(tmp, final)
    except BaseException:
        os.rename(old, final)  # the earlier checkpoint stays where it was
        raise
    shutil.rmtree(old, ignore_errors=True)


def _read_manifest(accelerator, directory: str) -> dict[str, Any]:
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"load_state: checkpoint directory {directory} does not exist")
    path = os.path.join(directory, MANIFEST)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_state: {directory} is not a checkpoint written by save_state: {MANIFEST} "
                                f"is missing")
    with open(path) as handle:
        plan = json.load(handle)
    expected = _plan(accelerator, True)
    if plan.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {plan.get('format_version')!r}; this accel reads {FORMAT_VERSION}")
    if plan["num_processes"] != expected["num_processes"]:
        raise ValueError(f"{path}: the checkpoint was written by {plan['num_processes']} process(es), this run has "
                         f"{expected['num_processes']}; random states and data positions are per process, so "
                         f"resume with --num-processes {plan['num_processes']} (save_model's weights load anywhere)")
    if plan["sharded_by"] != expected["sharded_by"]:
        raise ValueError(f"{path}: written under distributed_type {plan['distributed_type']}, this run uses "
                         f"{expected['distributed_type']}; their model/optimizer files differ")
    for key in ("models", "optimizers", "schedulers", "custom_objects"):
        if len(plan[key]) != len(expected[key]):
            raise ValueError(f"{path}: the checkpoint holds {len(plan[key])} {key} ({', '.join(map(str, plan[key]))}),"
                             f" but this Accelerator has {len(expected[key])} (prepared or registered); expected the "
                             f"same objects, in the same order, as the run that saved it")
    if plan["dataloaders"] != expected["dataloaders"]:
        raise ValueError(f"{path}: the checkpoint holds the positions of {plan['dataloaders']} DataLoader(s), this "
                         f"Accelerator prepared {expected['dataloaders']}")
    if bool(plan["scaler"]) != bool(expected["scaler"]):
        raise ValueError(f"{path}: the checkpoint {'has' if plan['scaler'] else 'has no'} fp16 GradScaler state, "
                         f"this run uses mixed_precision={accelerator.mixed_precision!r}")
    listed = {MANIFEST, *plan["models"], *plan["schedulers"], *plan["custom_objects"], *plan["random_states"],
              *(n for n in plan["optimizers"] if n), *([plan["scaler"]] if plan["scaler"] else [])}
    present = set(os.listdir(directory))
    if missing := sorted(listed - present):
        raise FileNotFoundError(f"load_state: {directory} lacks {', '.join(missing)}, listed in its {MANIFEST}")
    if unknown := sorted(present - listed):
        raise ValueError(f"load_state: {directory} holds {', '.join(unknown)}, not listed in its {MANIFEST}; "
                         f"expected only: {', '.join(sorted(listed))}")
    return plan


def _load(path: str) -> Any:
    return torch.load(path, map_location="cpu", weights_only=True)


def load_state(accelerator, input_dir: str | os.PathLike) -> None:
    """Restore what ``save_state`` wrote into the prepared objects of ``accelerator`` (same order)."""
    directory = os.path.abspath(os.path.expanduser(os.fspath(input_dir)))
    plan = _read_manifest(accelerator, directory)
    join = lambda name: os.path.join(directory, name)
    backend = accelerator.backend
    if plan["sharded_by"] == "fsdp":
        for (model, optimizer), name in zip(_sharded_pairs(accelerator), plan["models"]):
            backend.load_checkpoint(join(name), model, optimizer)
    elif plan["sharded_by"] == "deepspeed":
        for name in plan["models"]:
            backend.load_checkpoint(join(name))
    else:
        for model, name in zip(accelerator._models, plan["models"]):
            backend.unwrap_model(model).load_state_dict(read_weights(join(name)))
        for optimizer, name in zip(accelerator._optimizers, plan["optimizers"]):
            optimizer.load_state_dict(_load(join(name)))
    for scheduler, name in zip(accelerator._schedulers, plan["schedulers"]):
        scheduler.load_state_dict(_load(join(name)))
    if plan["scaler"]:
        accelerator.scaler.load_state_dict(_load(join(plan["scaler"])))
    for obj, name in zip(accelerator._custom_objects, plan["custom_objects"]):
        obj.load_state_dict(_load(join(name)))
    state = _load(join(plan["random_states"][accelerator.process_index]))
    for loader, position in zip(accelerator._dataloaders, state["dataloaders"]):
        loader.position.load_state_dict(position)
    accelerator.gradient_state.step = state["accumulation_step"]
    restore_global_rng(state["rng"])
    accelerator.wait_for_everyone()
