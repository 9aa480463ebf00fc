"""Where a prepared DataLoader is in its data, so that a resumed run continues with the same batches.

A ``DataPosition`` counts the passes a loader completed (``epoch``) and the batches it yielded in the pass under
way (``batches_seen``), and keeps the random states that decided the order of that pass (torch's global RNG and
the loader's own generators, taken when the pass started). After ``load_state``, the first pass of
``skip_first_batches(loader, n)`` replays that start: the shuffled order is the one the saved run was using,
and every random state is put back afterwards, as if the pass had never been restarted.
"""

from __future__ import annotations

import contextlib
import random
from typing import Any

import numpy as np
import torch


def order_generators(loader) -> list[torch.Generator]:
    """The generators (besides torch's global one) that decide the batch order of ``loader``."""
    sampler = getattr(getattr(loader, "batch_sampler", None), "sampler", None)
    found = [loader.generator, getattr(sampler, "generator", None)]
    return [g for g in found if isinstance(g, torch.Generator)]


def capture_global_rng() -> dict[str, Any]:
    """Python, NumPy and torch RNG states (and the current CUDA device's), as plain data ``torch.load`` accepts
    with ``weights_only=True``."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_global_rng(state: dict[str, Any]) -> None:
    """Inverse of ``capture_global_rng``."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state((np_state["kind"], np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


class DataPosition:
    """The data position of one prepared DataLoader (shared with the loaders ``skip_first_batches`` makes)."""

    def __init__(self, generators: list[torch.Generator]):
        self.generators = generators
        self.epoch = 0
        self.batches_seen = 0
        self.pass_start: dict[str, Any] | None = None
        self.resumable = False  # True after load_state restored a pass that was under way

    def _order_states(self) -> dict[str, Any]:
        return {"torch": torch.get_rng_state(), "generators": [g.get_state() for g in self.generators]}

    def begin_pass(self) -> None:
        self.batches_seen = 0
        self.pass_start = self._order_states()
        self.resumable = False

    def advance(self) -> None:
        self.batches_seen += 1

    def end_pass(self) -> None:
        self.epoch += 1
        self.batches_seen = 0

    @contextlib.contextmanager
    def replaying_pass_start(self):
        """Run the body with the random states of the saved pass's start, then put every state back."""
        now_global, now_generators = capture_global_rng(), [g.get_state() for g in self.generators]
        torch.set_rng_state(self.pass_start["torch"])
        for generator, state in zip(self.generators, self.pass_start["generators"]):
            generator.set_state(state)
        try:
            yield
        finally:
            restore_global_rng(now_global)
            for generator, state in zip(self.generators, now_generators):
                generator.set_state(state)
        self.resumable = False

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batches_seen": self.batches_seen, "pass_start": self.pass_start,
                "generators": [g.get_state() for g in self.generators]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["generators"]) != len(self.generators):
            raise ValueError(f"the saved DataLoader position has {len(state['generators'])} generator(s) deciding "
                             f"its order, this DataLoader has {len(self.generators)}: was it built the same way?")
        self.epoch, self.batches_seen, self.pass_start = state["epoch"], state["batches_seen"], state["pass_start"]
        for generator, saved in zip(self.generators, state["generators"]):
            generator.set_state(saved)
        self.resumable = self.batches_seen > 0 and self.pass_start is not None
