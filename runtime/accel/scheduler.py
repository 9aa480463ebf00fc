"""The LR scheduler ``Accelerator.prepare`` returns: it steps only when its optimizers really stepped."""

from __future__ import annotations

from .state import GradientState


class AcceleratedScheduler:
    """Wraps ``scheduler`` like Hugging Face Accelerate's ``AcceleratedScheduler``.

    ``step()`` does nothing on non-synchronising micro-batches of an accumulation window and when fp16 loss
    scaling skipped the optimizer step. With ``step_with_optimizer`` (the default), one call steps the wrapped
    scheduler ``num_processes`` times unless ``split_batches``: each process saw its own batch, so the schedule,
    written for one process, advances by the number of batches consumed in total.
    """

    def __init__(self, scheduler, optimizers: list, gradient_state: GradientState, num_processes: int,
                 split_batches: bool = False, step_with_optimizer: bool = True):
        self.scheduler = scheduler
        self.optimizers = optimizers
        self.gradient_state = gradient_state
        self.steps_per_call = 1 if split_batches else num_processes
        self.step_with_optimizer = step_with_optimizer

    def step(self, *args, **kwargs) -> None:
        if not self.step_with_optimizer:
            self.scheduler.step(*args, **kwargs)
            return
        if not self.gradient_state.sync_gradients:
            return
        if any(opt.step_was_skipped for opt in self.optimizers):
            return
        total_steps = getattr(self.scheduler, "total_steps", None)  # OneCycleLR refuses to step past its end
        for _ in range(self.steps_per_call):
            if total_steps is not None and self.scheduler.last_epoch >= total_steps:
                break
            self.scheduler.step(*args, **kwargs)

    def get_last_lr(self) -> list[float]:
        return self.scheduler.get_last_lr()

    def state_dict(self) -> dict:
        return self.scheduler.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        self.scheduler.load_state_dict(state_dict)

    def __getattr__(self, name: str):
        if name == "scheduler":
            raise AttributeError(name)
        return getattr(self.scheduler, name)
