"""Options for the objects the Accelerator creates, passed as ``Accelerator(kwargs_handlers=[...])``.

Each handler is a dataclass whose fields are keyword arguments of one torch constructor (plus, for DDP, the
communication hook to register); only the fields set to something other than their default are passed on, so
torch's own defaults apply to the rest.
"""

from __future__ import annotations

import dataclasses
import enum
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


class DDPCommunicationHookType(str, enum.Enum):
    """How DDP communicates gradients: as they are (``no``), compressed to fp16 / bf16, or by PowerSGD."""

    NO = "no"
    FP16 = "fp16"
    BF16 = "bf16"
    POWER_SGD = "power_sgd"
    BATCHED_POWER_SGD = "batched_power_sgd"


_POWER_SGD = (DDPCommunicationHookType.POWER_SGD, DDPCommunicationHookType.BATCHED_POWER_SGD)
_WRAPPERS = (DDPCommunicationHookType.NO, DDPCommunicationHookType.FP16, DDPCommunicationHookType.BF16)
# fields that configure a communication hook rather than the DistributedDataParallel constructor
_HOOK_FIELDS = ("comm_hook", "comm_wrapper", "comm_state_option")


@dataclasses.dataclass
class DistributedDataParallelKwargs(KwargsHandler):
    """Keyword arguments for ``torch.nn.parallel.DistributedDataParallel`` when the DDP backend wraps a model
    (several processes, no FSDP or DeepSpeed); ignored otherwise. ``device_ids`` and ``output_device`` are not
    options: the accelerator sets them for the process's device.

    ``find_unused_parameters=True`` is needed by a model whose forward leaves some parameters out of the loss
    (a branch taken only sometimes); ``static_graph=True`` declares that the set of used parameters never changes.
    ``comm_hook`` compresses the gradients sent (fp16, bf16) or approximates them (PowerSGD, configured by
    ``comm_state_option``: ``PowerSGDState``'s arguments); ``comm_wrapper`` compresses PowerSGD's messages too.
    """

    dim: int = 0
    broadcast_buffers: bool = True
    bucket_cap_mb: float = 25
    find_unused_parameters: bool = False
    check_reduction: bool = False
    gradient_as_bucket_view: bool = False
    static_graph: bool = False
    comm_hook: DDPCommunicationHookType = DDPCommunicationHookType.NO
    comm_wrapper: DDPCommunicationHookType = DDPCommunicationHookType.NO
    comm_state_option: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        owner = type(self).__name__
        self.comm_hook = _hook_type(owner, "comm_hook", self.comm_hook, tuple(DDPCommunicationHookType))
        self.comm_wrapper = _hook_type(owner, "comm_wrapper", self.comm_wrapper, _WRAPPERS)
        if self.comm_hook not in _POWER_SGD and (self.comm_wrapper != "no" or self.comm_state_option):
            raise ValueError(f"{owner}: comm_wrapper and comm_state_option apply to comm_hook='power_sgd' or "
                             f"'batched_power_sgd'; got comm_hook={self.comm_hook.value!r}")
        if not isinstance(self.comm_state_option, dict):
            raise ValueError(f"{owner}.comm_state_option={self.comm_state_option!r} is not allowed; expected a dict "
                             "of PowerSGDState arguments")
        for field in dataclasses.fields(self):
            if field.name in _HOOK_FIELDS:
                continue
            value = getattr(self, field.name)
            if field.name in ("dim", "bucket_cap_mb"):
                valid = isinstance(value, (int, float)) and not isinstance(value, bool)
                valid = valid and (value > 0 if field.name == "bucket_cap_mb" else isinstance(value, int))
                expected = "a number > 0" if field.name == "bucket_cap_mb" else "an integer"
            else:
                valid, expected = isinstance(value, bool), "True or False"
            if not valid:
                raise ValueError(f"{owner}.{field.name}={value!r} is not allowed; expected {expected}")

    def to_kwargs(self) -> dict[str, Any]:
        """The ``DistributedDataParallel`` arguments that differ from their default (not the hook's settings)."""
        return {name: value for name, value in super().to_kwargs().items() if name not in _HOOK_FIELDS}


def _hook_type(owner: str, field: str, value: Any, allowed: tuple) -> DDPCommunicationHookType:
    try:
        kind = DDPCommunicationHookType(value)
    except ValueError:
        kind = None
    if kind not in allowed:
        names = ", ".join(repr(k.value) for k in allowed)
        raise ValueError(f"{owner}.{field}={value!r} is not allowed; allowed: {names}")
    return kind


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
