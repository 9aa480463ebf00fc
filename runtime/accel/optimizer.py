"""The optimizer ``Accelerator.prepare`` returns: steps through the backend (loss scaling), and does nothing on
the micro-batches of an accumulation window where gradients are not synchronised."""

from __future__ import annotations

import torch

from .backends.base import Backend
from .ops import send_to_device
from .state import GradientState


class AcceleratedOptimizer(torch.optim.Optimizer):
    """Wraps ``optimizer``; ``param_groups``, ``state`` and ``state_dict`` are the wrapped optimizer's own.

    ``step`` and ``zero_grad`` are no-ops while ``gradient_state.sync_gradients`` is False. After ``step``,
    ``step_was_skipped`` is True when fp16 loss scaling found inf/NaN gradients and skipped the update.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, backend: Backend, gradient_state: GradientState,
                 device_placement: bool = True):
        # torch.optim.Optimizer.__init__ is deliberately not called: every piece of state is the wrapped one's.
        self.optimizer = optimizer
        self.backend = backend
        self.gradient_state = gradient_state
        self.step_was_skipped = False
        if device_placement and optimizer.state:
            optimizer.load_state_dict(send_to_device(optimizer.state_dict(), backend.state.device))
        backend.precision.prepare_optimizer(optimizer)

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    @param_groups.setter
    def param_groups(self, value):
        self.optimizer.param_groups = value

    @property
    def defaults(self):
        return self.optimizer.defaults

    @defaults.setter
    def defaults(self, value):
        self.optimizer.defaults = value

    @property
    def state(self):
        return self.optimizer.state

    def add_param_group(self, param_group: dict) -> None:
        self.optimizer.add_param_group(param_group)

    def state_dict(self) -> dict:
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        self.optimizer.load_state_dict(state_dict)

    def zero_grad(self, set_to_none: bool = True) -> None:
        if self.gradient_state.sync_gradients:
            self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self, closure=None):
        if self.gradient_state.sync_gradients:
            self.step_was_skipped = not self.backend.optimizer_step(self.optimizer, closure)

    def train(self) -> None:
        if hasattr(self.optimizer, "train"):
            self.optimizer.train()

    def eval(self) -> None:
        if hasattr(self.optimizer, "eval"):
            self.optimizer.eval()

    def __getstate__(self):
        return self.__dict__.copy()

    def __setstate__(self, state):
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"AcceleratedOptimizer({self.optimizer!r})"
