"""Model weights on disk: ``save_model`` writes them, ``load_checkpoint_in_model`` reads them back.

Formats follow Hugging Face's: ``model.safetensors`` (or ``pytorch_model.bin`` with ``safe_serialization=False``),
split into ``model-00001-of-0000N.safetensors`` ... plus ``model.safetensors.index.json`` (``weight_map``: tensor
name -> file) when the weights exceed ``max_shard_size``. safetensors refuses tensors that share memory, so tied
weights (an output layer that is the embedding) are stored once; the names dropped are recorded as aliases
(``accel_aliases`` in the file's or the index's metadata: dropped name -> stored name) and restored on loading.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
import warnings

import torch
from torch import nn

SAFE_WEIGHTS_NAME = "model.safetensors"
WEIGHTS_NAME = "pytorch_model.bin"
ALIASES_KEY = "accel_aliases"
_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_size(size: int | str) -> int:
    """Bytes in ``size``: an int, or digits and a unit such as ``"10GB"``, ``"500MB"``, ``"2GiB"``."""
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]I?B|B)\s*", str(size).upper())
    if not match:
        raise ValueError(f"max_shard_size={size!r} is not a size; expected a positive int (bytes) or digits and a "
                         f"unit, e.g. '10GB', '500MB', '2GiB'")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def deduplicate_shared(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``state_dict`` with every tensor that is the same view of the same memory as an earlier one left out,
    and the aliases (left-out name -> kept name). Tensors that merely overlap another are copied."""
    kept: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    storages: set[int] = set()
    for name, tensor in state_dict.items():
        if tensor.device.type == "meta":
            raise ValueError(f"cannot save tensor {name!r}: it is on the meta device (no data)")
        pointer = tensor.untyped_storage().data_ptr()
        view = (pointer, tensor.storage_offset(), tuple(tensor.shape), tuple(tensor.stride()), tensor.dtype)
        if view in seen:
            aliases[name] = seen[view]
            continue
        seen[view] = name
        kept[name] = tensor.clone() if pointer in storages else tensor
        storages.add(pointer)
    return kept, aliases


def split_shards(state_dict: dict[str, torch.Tensor], max_bytes: int) -> list[dict[str, torch.Tensor]]:
    """Consecutive groups of tensors of at most ``max_bytes`` each (a larger tensor gets a group of its own)."""
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, tensor in state_dict.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > max_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = tensor
        size += nbytes
    return shards


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_atomic(path: str, write) -> None:
    """``write(tmp)`` into a temporary file next to ``path``, then rename it to ``path`` (usual permissions)."""
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(data, path: str) -> None:
    with open(path, "w") as handle:
        handle.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_weights_file(state_dict: dict[str, torch.Tensor], path: str, safe_serialization: bool,
                       aliases: dict[str, str] | None = None) -> None:
    """One weights file, atomically: safetensors (aliases in its metadata) or ``torch.save``."""
    if safe_serialization:
        from safetensors.torch import save_file

        metadata = {"format": "pt", ALIASES_KEY: json.dumps(aliases or {})}
        tensors = {k: v.detach().contiguous() for k, v in state_dict.items()}
        _write_atomic(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
    else:
        _write_atomic(path, lambda tmp: torch.save(state_dict, tmp))


def save_weights(state_dict: dict[str, torch.Tensor], directory: str | os.PathLike, max_shard_size: int | str = "10GB",
                 safe_serialization: bool = True) -> list[str]:
    """Write ``state_dict`` under ``directory`` (see the module docstring); returns the file names written.
    Weight files of an earlier save in the same format that this one did not rewrite are removed."""
    directory = os.fspath(directory)
    if os.path.isfile(directory):
        raise NotADirectoryError(f"save_model: {directory} is a file; expected a directory (created if missing)")
    os.makedirs(directory, exist_ok=True)
    base = SAFE_WEIGHTS_NAME if safe_serialization else WEIGHTS_NAME
    stem, ext = os.path.splitext(base)
    kept, aliases = deduplicate_shared(state_dict)  # before moving to the CPU, which would untie them
    kept = {k: v.detach().cpu() for k, v in kept.items()}
    shards = split_shards(kept, parse_size(max_shard_size))
    if len(shards) == 1:
        if not safe_serialization:  # torch.save keeps tied tensors tied by itself
            shards[0] = {k: v.detach().cpu() for k, v in state_dict.items()}
        write_weights_file(shards[0], os.path.join(directory, base), safe_serialization, aliases)
        written = [base]
    else:
        written = [f"{stem}-{i:05d}-of-{len(shards):05d}{ext}" for i in range(1, len(shards) + 1)]
        weight_map = {}
        for name, shard in zip(written, shards):
            write_weights_file(shard, os.path.join(directory, name), safe_serialization)
            weight_map.update(dict.fromkeys(shard, name))
        total = sum(t.numel() * t.element_size() for t in kept.values())
        index = {"metadata": {"total_size": total, ALIASES_KEY: aliases}, "weight_map": weight_map}
        index_name = base + ".index.json"
        _write_atomic(os.path.join(directory, index_name), lambda tmp: write_json(index, tmp))
        written.append(index_name)
    pattern = re.compile(rf"{re.escape(stem)}(-\d{{5}}-of-\d{{5}})?{re.escape(ext)}(\.index\.json)?")
    for stale in set(os.listdir(directory)) - set(written):
        if pattern.fullmatch(stale):
            os.unlink(os.path.join(directory, stale))
    return written


def read_weights_file(path: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors of one weights file (safetensors, or a ``torch.save`` file read with ``weights_only=True``)
    and the aliases recorded in it."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such weights file")
    if path.endswith(".safetensors"):
        from safetensors import safe_open

        with safe_open(path, framework="pt") as handle:
            aliases = json.loads((handle.metadata() or {}).get(ALIASES_KEY, "{}"))
            names = handle.keys()  # safe_open is no dict: no iteration over it
            return {name: handle.get_tensor(name) for name in names}, aliases
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise TypeError(f"{path}: expected a state dict (name -> tensor), found a {type(state).__name__}")
    return state, {}


def read_weights(checkpoint: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The full state dict stored at ``checkpoint``: a weights file, an index json, or a directory holding
    either (safetensors preferred); aliases are filled in."""
    path = os.fspath(checkpoint)
    if os.path.isdir(path):
        candidates = [SAFE_WEIGHTS_NAME + ".index.json", SAFE_WEIGHTS_NAME, WEIGHTS_NAME + ".index.json", WEIGHTS_NAME]
        found = next((c for c in candidates if os.path.isfile(os.path.join(path, c))), None)
        if found is None:
            raise FileNotFoundError(f"{path}: no model weights found; expected one of {', '.join(candidates)}")
        path = os.path.join(path, found)
    if path.endswith(".index.json"):
        with open(path) as handle:
            index = json.load(handle)
        if "weight_map" not in index:
            raise ValueError(f"{path}: not a weights index (no 'weight_map' key)")
        state: dict[str, torch.Tensor] = {}
        for name in sorted(set(index["weight_map"].values())):
            state.update(read_weights_file(os.path.join(os.path.dirname(path), name))[0])
        missing = sorted(set(index["weight_map"]) - set(state))
        if missing:
            raise ValueError(f"{path}: the index lists tensors its files do not hold: {', '.join(missing[:5])}")
        aliases = index.get("metadata", {}).get(ALIASES_KEY, {})
    else:
        state, aliases = read_weights_file(path)
    for alias, stored in aliases.items():
        state[alias] = state[stored]
    return state


def load_checkpoint_in_model(model: nn.Module, checkpoint: str | os.PathLike, strict: bool = False) -> None:
    """Load weights written by ``save_model`` (file, index or directory) into ``model``.

    Like Hugging Face Accelerate's function of this name: with ``strict=False`` missing and unexpected names
    are reported in a warning; with ``strict=True`` they are an error.
    """
    result = model.load_state_dict(read_weights(checkpoint), strict=strict)
    if result.missing_keys or result.unexpected_keys:
        warnings.warn(f"loading {os.fspath(checkpoint)} into {type(model).__name__}: missing keys "
                      f"{result.missing_keys}, unexpected keys {result.unexpected_keys}", stacklevel=2)
