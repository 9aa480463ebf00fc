"""Options for the objects the Accelerator creates, passed as ``Accelerator(kwargs_handlers=[...])``.

Each handler is a dataclass whose fields are keyword arguments of one torch constructor; only the fields set to
something other than their default are passed on, so torch's own defaults apply to the rest.
"""

from __future__ import annotations

import dataclasses
from typing import Any


class KwargsHandler:
    """Base of the handlers ``Accelerator(kwargs_handlers=...)`` accepts (each a dataclass)."""

    def to_kwargs(self) -> dict[str, Any]:
        """The fields whose value differs from the field's default, as keyword arguments."""
        return {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if getattr(self, field.name) != field.default
        }


@dataclasses.dataclass
class DistributedDataParallelKwargs(KwargsHandler):
    """Keyword arguments for ``torch.nn.parallel.DistributedDataParallel`` when the DDP backend wraps a model
    (several processes, no FSDP or DeepSpeed); ignored otherwise. ``device_ids`` and ``output_device`` are not
    options: the accelerator sets them for the process's device.

    ``find_unused_parameters=True`` is needed by a model whose forward leaves some parameters out of the loss
    (a branch taken only sometimes); ``static_graph=True`` declares that the set of used parameters never changes.
    """

    dim: int = 0
    broadcast_buffers: bool = True
    bucket_cap_mb: float = 25
    find_unused_parameters: bool = False
    check_reduction: bool = False
    gradient_as_bucket_view: bool = False
    static_graph: bool = False

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in ("dim", "bucket_cap_mb"):
                valid = isinstance(value, (int, float)) and not isinstance(value, bool)
                valid = valid and (value > 0 if field.name == "bucket_cap_mb" else isinstance(value, int))
                expected = "a number > 0" if field.name == "bucket_cap_mb" else "an integer"
            else:
                valid, expected = isinstance(value, bool), "True or False"
            if not valid:
                raise ValueError(f"{type(self).__name__}.{field.name}={value!r} is not allowed; expected {expected}")


#: handler class -> the Accelerator attribute holding it
HANDLER_ATTRIBUTES: dict[type, str] = {DistributedDataParallelKwargs: "ddp_handler"}


def sort_handlers(handlers) -> dict[str, KwargsHandler]:
    """``kwargs_handlers`` as {Accelerator attribute: handler}; a non-handler or a class given twice is an error."""
    found: dict[str, KwargsHandler] = {}
    for handler in handlers or ():
        attribute = HANDLER_ATTRIBUTES.get(type(handler))
        if attribute is None:
            allowed = ", ".join(cls.__name__ for cls in HANDLER_ATTRIBUTES)
            raise TypeError(f"kwargs_handlers: {handler!r} is not a kwargs handler; allowed: {allowed}")
        if attribute in found:
            raise ValueError(f"kwargs_handlers: {type(handler).__name__} given twice; pass one of each")
        found[attribute] = handler
    return found
