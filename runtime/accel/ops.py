"""Collectives and device moves on nested structures (tensors inside lists, tuples, namedtuples and dicts).

Each function walks the structure once and applies a backend's tensor collective to every tensor leaf.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from .backends.base import Backend


def apply_to_tensors(fn: Callable[[torch.Tensor], Any], data: Any, strict: bool = True) -> Any:
    """Rebuild ``data`` with ``fn`` applied to each tensor. Other leaves raise TypeError if ``strict``, else stay."""
    if isinstance(data, torch.Tensor):
        return fn(data)
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(apply_to_tensors(fn, v, strict) for v in data))
    if isinstance(data, (list, tuple)):
        return type(data)(apply_to_tensors(fn, v, strict) for v in data)
    if isinstance(data, Mapping):
        return type(data)({k: apply_to_tensors(fn, v, strict) for k, v in data.items()})
    if strict:
        raise TypeError(
            f"expected a tensor or a (nested) list/tuple/dict of tensors, got {type(data).__name__}"
        )
    return data


def is_tensor_structure(data: Any) -> bool:
    """True when every leaf of the (nested) list/tuple/dict ``data`` is a tensor."""
    if isinstance(data, torch.Tensor):
        return True
    if isinstance(data, (list, tuple)):
        return all(is_tensor_structure(v) for v in data)
    if isinstance(data, Mapping):
        return all(is_tensor_structure(v) for v in data.values())
    return False


def send_to_device(data: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """Move every tensor (and every object with a ``.to`` method, e.g. a tokenizer's BatchEncoding) to ``device``."""
    if isinstance(data, torch.Tensor) or (hasattr(data, "to") and not isinstance(data, (list, tuple, Mapping))):
        try:
            return data.to(device, non_blocking=non_blocking)
        except TypeError:
            return data.to(device)
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(send_to_device(v, device, non_blocking) for v in data))
    if isinstance(data, (list, tuple)):
        return type(data)(send_to_device(v, device, non_blocking) for v in data)
    if isinstance(data, Mapping):
        return type(data)({k: send_to_device(v, device, non_blocking) for k, v in data.items()})
    return data


def gather(backend: Backend, data: Any) -> Any:
    """Concatenate each tensor of ``data`` along dim 0 over all processes (0-d tensors become 1-d)."""
    return apply_to_tensors(backend.all_gather, data)


def gather_object(backend: Backend, obj: Any) -> list:
    """One flat list of every process's items: a list/tuple from each process is concatenated in process order."""
    parts = backend.all_gather_object(obj)
    if isinstance(obj, (list, tuple)):
        return [item for part in parts for item in part]
    return parts


REDUCTIONS = ("sum", "mean", "max", "none")


def reduce(backend: Backend, data: Any, reduction: str = "sum") -> Any:
    """Reduce each tensor of ``data`` over all processes: ``sum``, ``mean``, ``max``, or ``none`` (a copy)."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; allowed: {', '.join(REDUCTIONS)}")
    n = backend.state.num_processes

    def one(tensor: torch.Tensor) -> torch.Tensor:
        if reduction == "none":
            return tensor.clone()
        out = backend.all_reduce(tensor, "max" if reduction == "max" else "sum")
        return out / n if reduction == "mean" else out

    return apply_to_tensors(one, data)


def broadcast(backend: Backend, data: Any, from_process: int = 0) -> Any:
    """Every tensor of ``data`` replaced, in place, by process ``from_process``'s value (same shapes everywhere)."""
    return apply_to_tensors(lambda t: backend.broadcast(t, from_process), data)


def pad_across_processes(
    backend: Backend, data: Any, dim: int = 0, pad_index: int = 0, pad_first: bool = False
) -> Any:
    """Pad each tensor along ``dim`` to the largest size any process has, so that it can be gathered."""

    def one(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.ndim == 0 or dim >= tensor.ndim or dim < -tensor.ndim:
            return tensor
        size = torch.tensor([tensor.shape[dim]], device=tensor.device)
        longest = int(backend.all_reduce(size, "max").item())
        if longest == tensor.shape[dim]:
            return tensor
        shape = list(tensor.shape)
        missing = longest - shape[dim]
        shape[dim] = missing
        filler = tensor.new_full(shape, pad_index)
        parts = (filler, tensor) if pad_first else (tensor, filler)
        return torch.cat(parts, dim=dim)

    return apply_to_tensors(one, data)


def split_for_process(inputs: Any, parts: int, index: int, apply_padding: bool = False) -> Any:
    """Contiguous share number ``index`` of ``parts`` of a list, tuple, tensor or dict of those; shares differ by
    at most one item, and ``apply_padding`` repeats the last item so that all have the same length."""
    if isinstance(inputs, dict):
        return type(inputs)({k: split_for_process(v, parts, index, apply_padding) for k, v in inputs.items()})
    if not isinstance(inputs, (list, tuple, torch.Tensor)):
        raise TypeError(f"split_between_processes() cannot split a {type(inputs).__name__}; allowed: list, tuple, "
                        "dict of those, torch.Tensor")
    length = len(inputs)
    base, extra = divmod(length, parts)
    start = index * base + min(index, extra)
    end = start + base + (1 if index < extra else 0)
    share = inputs[start:end]
    if apply_padding and extra and len(share) < base + 1 and length:
        last = inputs[-1:]
        share = torch.cat([share, last]) if isinstance(share, torch.Tensor) else share + type(share)(last)
    return share
