"""Sharding a DataLoader across processes and moving its batches to the device.

With one process the user's own DataLoader is iterated unchanged (same batches, same order, same use of the
global RNG as the original script), only moved to the device. With N processes each process iterates the full
index stream of the original batch sampler, in the same shuffled order everywhere (the sampler's seed is taken
from process 0), and keeps every N-th batch (or, with ``split_batches``, its N-th of every batch). With
``even_batches`` the last round is completed with indices from the start of the epoch so that every process
gets the same number of equally sized batches; ``remainder`` tells ``gather_for_metrics`` how many gathered
samples of that last round are real. A map-style dataset's remainder follows from its length; an iterable
dataset's is counted as it is read (its length may be unknown or wrong): each batch comes with the number of
real samples in its round.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, Sampler

from .data_position import DataPosition, order_generators
from .ops import send_to_device
from .state import GradientState


def _split_check(batch_size: int | None, num_processes: int) -> None:
    if batch_size is None or batch_size % num_processes:
        raise ValueError(
            f"split_batches=True needs a batch size that is a multiple of the number of processes "
            f"({num_processes}); got batch_size={batch_size}"
        )


class ShardedBatchSampler(Sampler):
    """The batches of ``batch_sampler`` that belong to process ``process_index`` of ``num_processes``."""

    def __init__(self, batch_sampler, num_processes: int, process_index: int, split_batches=False, even_batches=True):
        self.batch_sampler = batch_sampler
        self.num_processes = num_processes
        self.process_index = process_index
        self.split_batches = split_batches
        self.even_batches = even_batches
        self.batch_size = getattr(batch_sampler, "batch_size", None)
        self.drop_last = getattr(batch_sampler, "drop_last", False)
        if split_batches:
            _split_check(self.batch_size, num_processes)

    def __len__(self) -> int:
        batches, n = len(self.batch_sampler), self.num_processes
        if self.split_batches:
            return batches
        if self.drop_last:
            return batches // n
        if self.even_batches:
            return math.ceil(batches / n)
        return batches // n + (1 if self.process_index < batches % n else 0)

    def __iter__(self) -> Iterator[list]:
        return self._iter_split() if self.split_batches else self._iter_rounds()

    def _iter_rounds(self) -> Iterator[list]:
        n, rank, size = self.num_processes, self.process_index, self.batch_size
        pad = self.even_batches and not self.drop_last
        first: list = []  # the epoch's first indices (or first whole batches when the size is unknown)
        round_: list = []
        for batch in self.batch_sampler:
            if pad and len(first) < (n * size if size else n):
                first.extend(batch if size else [batch])
            round_.append(batch)
            if len(round_) == n:
                if size is not None and len(batch) < size:
                    break  # the last batch is short: complete it below
                yield round_[rank]
                round_ = []
        if not round_ or self.drop_last:
            return
        if not self.even_batches:
            if rank < len(round_):
                yield round_[rank]
            return
        filler = itertools.cycle(first)
        if size is not None:
            round_[-1] = list(round_[-1]) + [next(filler) for _ in range(size - len(round_[-1]))]
            round_ += [[next(filler) for _ in range(size)] for _ in range(n - len(round_))]
        else:
            round_ += [next(filler) for _ in range(n - len(round_))]
        yield round_[rank]

    def _iter_split(self) -> Iterator[list]:
        n, rank, size = self.num_processes, self.process_index, self.batch_size
        share = size // n
        first: list = []
        for batch in self.batch_sampler:
            if not first:
                first = list(batch)
            if len(batch) < size:
                if self.even_batches:
                    filler = itertools.cycle(first)
                    batch = list(batch) + [next(filler) for _ in range(size - len(batch))]
                else:
                    part = math.ceil(len(batch) / n)
                    if batch[rank * part : (rank + 1) * part]:
                        yield batch[rank * part : (rank + 1) * part]
                    continue
            yield batch[rank * share : (rank + 1) * share]


class ShardedIterableDataset(IterableDataset):
    """Process ``process_index``'s share of an iterable dataset: of every ``round_size`` consecutive samples it
    keeps slice number ``process_index``; a short last round is completed from the start if ``even_batches``."""

    def __init__(self, dataset, round_size: int, num_processes: int, process_index: int, drop_last=False, even_batches=True):
        self.dataset = dataset
        self.round_size = round_size
        self.share = round_size // num_processes
        self.process_index = process_index
        self.drop_last = drop_last
        self.even_batches = even_batches

    def __iter__(self):
        for samples, _ in self.slices():
            yield from samples

    def slices(self):
        """Per round: (this process's samples of it, how many samples of the round are real, not filler)."""
        lo, hi = self.process_index * self.share, (self.process_index + 1) * self.share
        first: list = []
        buffer: list = []
        for item in self.dataset:
            buffer.append(item)
            if len(first) < self.round_size:
                first.append(item)
            if len(buffer) == self.round_size:
                yield buffer[lo:hi], self.round_size
                buffer = []
        if buffer and not self.drop_last:
            real = len(buffer)
            if self.even_batches:
                filler = itertools.cycle(first)
                buffer += [next(filler) for _ in range(self.round_size - len(buffer))]
            yield buffer[lo:hi], real


class RoundBatches(IterableDataset):
    """The non-empty slices of a ``ShardedIterableDataset``, each one sample: (samples, real samples in its round).
    A DataLoader reads it with ``batch_size=None`` and a ``CollateRound`` (so one slice is one batch)."""

    def __init__(self, sharded: ShardedIterableDataset):
        self.sharded = sharded

    def __iter__(self):
        return ((samples, real) for samples, real in self.sharded.slices() if samples)

    def __len__(self) -> int:
        """This process's number of batches, from the dataset's own ``len()`` (a TypeError without one)."""
        sharded = self.sharded
        rounds, rest = divmod(len(sharded.dataset), sharded.round_size)
        if rest and not sharded.drop_last and (sharded.even_batches or sharded.process_index * sharded.share < rest):
            rounds += 1
        return rounds


class CollateRound:
    """Collate the samples of one ``RoundBatches`` item with the loader's ``collate_fn``, keeping the count of real
    samples beside the batch (picklable, for worker processes)."""

    def __init__(self, collate_fn: Callable):
        self.collate_fn = collate_fn

    def __call__(self, item):
        samples, real = item
        return self.collate_fn(samples), real


def _loader_kwargs(loader: DataLoader) -> dict[str, Any]:
    """The constructor arguments of ``loader`` other than the dataset and how it batches."""
    kwargs = {
        "num_workers": loader.num_workers,
        "collate_fn": loader.collate_fn,
        "pin_memory": loader.pin_memory,
        "timeout": loader.timeout,
        "worker_init_fn": loader.worker_init_fn,
        "multiprocessing_context": loader.multiprocessing_context,
        "generator": loader.generator,
        "persistent_workers": loader.persistent_workers,
        "pin_memory_device": loader.pin_memory_device,
    }
    if loader.num_workers > 0:
        kwargs["prefetch_factor"] = loader.prefetch_factor
    if hasattr(loader, "in_order"):
        kwargs["in_order"] = loader.in_order
    return kwargs


class _SkipBatches(Sampler):
    """A batch sampler without the first ``skip`` batches of another."""

    def __init__(self, batch_sampler, skip: int):
        self.batch_sampler = batch_sampler
        self.skip = skip

    def __len__(self) -> int:
        return max(len(self.batch_sampler) - self.skip, 0)

    def __iter__(self):
        return itertools.islice(iter(self.batch_sampler), self.skip, None)


class PreparedDataLoader(DataLoader):
    """What ``Accelerator.prepare`` returns for a DataLoader: iterates the (sharded) loader, moves each batch to
    the device, and tells the gradient state when the last batch is reached. With ``counts_rounds`` the loader
    yields (batch, real samples in its round) pairs (see ``RoundBatches``): any batch may then hold filler (each
    DataLoader worker evens out its own last round), and ``remainder`` is set from the last one.

    It is a ``DataLoader`` for ``isinstance`` checks, but holds no loading machinery of its own (``DataLoader``'s
    constructor is not called): attributes not defined here (``dataset``, ``sampler``, ``collate_fn``, ...) come
    from the wrapped loader.
    """

    def __init__(
        self,
        loader: DataLoader,
        gradient_state: GradientState,
        device: torch.device | None,
        batch_size: int | None,
        total_batch_size: int | None,
        remainder: int = -1,
        sync_seed: Callable[[], None] | None = None,
        epoch_targets: tuple = (),
        position: DataPosition | None = None,
        skip: int = 0,
        counts_rounds: bool = False,
    ):
        self.base_loader = loader
        self.counts_rounds = counts_rounds
        self.gradient_state = gradient_state
        self.device = device
        self.batch_size = batch_size
        self.total_batch_size = total_batch_size
        self.remainder = remainder
        self.end_of_dataloader = False
        self._batch_real = -1  # counted rounds: real samples of the current batch's round when it was evened out
        self._sync_seed = sync_seed
        self._epoch_targets = epoch_targets
        self.position = position if position is not None else DataPosition(order_generators(loader))
        self._skip = skip  # batches left out at the start of every pass (see skip_first_batches)
        if device is None or device.type == "cpu":
            self._move = None  # batches from a DataLoader are already on the CPU
        else:
            self._move = functools.partial(send_to_device, device=device, non_blocking=loader.pin_memory or device.type == "cuda")

    def __getattr__(self, name: str):
        if name == "base_loader":  # not set yet (copy/unpickle)
            raise AttributeError(name)
        return getattr(self.base_loader, name)

    def __len__(self) -> int:
        return max(len(self.base_loader) - self._skip, 0)

    @property
    def real_samples_in_batch(self) -> int:
        """How many of the samples gathered from the current batch are real when it was completed with samples
        from the start of the epoch (to even out the last round), else -1."""
        if self.counts_rounds:
            return self._batch_real
        return self.remainder if self.end_of_dataloader else -1

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to the original sampler / batch sampler / dataset where they have ``set_epoch``."""
        for target in self._epoch_targets:
            target.set_epoch(epoch)

    def __iter__(self):
        iterator = self._start_pass()
        self.end_of_dataloader = False
        self._batch_real = -1
        self.gradient_state.begin_loader(self)
        try:
            if not isinstance(self.base_loader.dataset, IterableDataset):
                yield from self._iter_sized(iterator)
            else:
                yield from self._iter_lookahead(iterator)
            self.position.end_pass()
        finally:
            self.gradient_state.end_loader(self)

    def _start_pass(self):
        """The base loader's iterator for a new pass, past its first ``_skip`` batches. A pass resumed from a
        checkpoint (``DataPosition.resumable``) starts from the saved pass's random states, so that it has the
        saved pass's order, and reads past the skipped batches; otherwise they are skipped in the batch sampler."""
        position = self.position
        if self._skip and position.resumable:
            with position.replaying_pass_start():
                if self._sync_seed is not None:
                    self._sync_seed()
                iterator = iter(self.base_loader)
                for _ in range(self._skip):
                    next(iterator)
            position.batches_seen = self._skip
            return iterator
        position.begin_pass()
        if self._sync_seed is not None:
            self._sync_seed()
        if not self._skip:
            return iter(self.base_loader)
        inner = self.base_loader
        skipping = DataLoader(inner.dataset, batch_sampler=_SkipBatches(inner.batch_sampler, self._skip),
                              **_loader_kwargs(inner))
        position.batches_seen = self._skip
        return iter(skipping)

    def _iter_sized(self, iterator):
        move, last, position = self._move, len(self.base_loader) - 1, self.position
        for index, batch in enumerate(iterator, start=self._skip):
            if index == last:
                self.end_of_dataloader = True
            position.advance()
            yield batch if move is None else move(batch)

    def _iter_lookahead(self, iterator):
        # an iterable dataset's length is unknown or approximate: read one batch ahead to find the last one
        move, position, total = self._move, self.position, self.total_batch_size
        if not self.counts_rounds:
            iterator = ((batch, None) for batch in iterator)
        upcoming = next(iterator, None)
        while upcoming is not None:
            batch, real = upcoming
            upcoming = next(iterator, None)
            if real is not None:
                self._batch_real = real if real < total else -1
            if upcoming is None:
                self.end_of_dataloader = True
                if real is not None:
                    self.remainder = self._batch_real
            position.advance()
            yield batch if move is None else move(batch)


def _seed_synchroniser(sampler, broadcast_seed: Callable[[int], int]) -> Callable[[], None] | None:
    """Give a random sampler a private generator re-seeded at every epoch with process 0's seed, so that all
    processes shuffle identically. The seed is drawn the way the sampler would have drawn it (from its own
    generator if it had one, else from torch's global RNG)."""
    if not hasattr(sampler, "generator"):
        return None
    source = sampler.generator
    private = torch.Generator()
    sampler.generator = private

    def sync() -> None:
        seed = int(torch.empty((), dtype=torch.int64).random_(generator=source).item())
        private.manual_seed(broadcast_seed(seed))

    return sync


def prepare_data_loader(
    loader: DataLoader,
    gradient_state: GradientState,
    num_processes: int,
    process_index: int,
    device: torch.device | None,
    broadcast_seed: Callable[[int], int],
    split_batches: bool = False,
    even_batches: bool = True,
) -> PreparedDataLoader:
    """Shard ``loader`` for this process (see the module docstring) and wrap it in a PreparedDataLoader."""
    batch_sampler = loader.batch_sampler
    targets = (batch_sampler, getattr(batch_sampler, "sampler", None), loader.dataset)
    targets = tuple(t for t in targets if hasattr(t, "set_epoch"))
    size = loader.batch_size if batch_sampler is None else getattr(batch_sampler, "batch_size", None)
    position = DataPosition(order_generators(loader))  # before the seed synchroniser replaces a generator
    if num_processes == 1:
        return PreparedDataLoader(loader, gradient_state, device, size, size, epoch_targets=targets, position=position)
    if split_batches:
        _split_check(size, num_processes)
    per_process = size // num_processes if (split_batches and size) else size
    total = size if split_batches else (size * num_processes if size else None)
    kwargs = _loader_kwargs(loader)
    if isinstance(loader.dataset, IterableDataset):
        if size is None:
            raise ValueError("a DataLoader over an IterableDataset needs a batch_size to be sharded across processes")
        dataset = ShardedIterableDataset(
            loader.dataset, total, num_processes, process_index, loader.drop_last, even_batches
        )
        kwargs["collate_fn"] = CollateRound(loader.collate_fn)
        sharded = DataLoader(RoundBatches(dataset), batch_size=None, **kwargs)
        return PreparedDataLoader(sharded, gradient_state, device, per_process, total, -1, None, targets, position,
                                  counts_rounds=True)
    if batch_sampler is None:
        raise ValueError("a DataLoader with batch_size=None cannot be sharded across processes; give it a batch_size")
    sync = _seed_synchroniser(batch_sampler.sampler, broadcast_seed) if hasattr(batch_sampler, "sampler") else None
    shard = ShardedBatchSampler(batch_sampler, num_processes, process_index, split_batches, even_batches)
    sharded = DataLoader(loader.dataset, batch_sampler=shard, **kwargs)
    source = getattr(batch_sampler, "sampler", None)
    length = len(source) if source is not None else len(loader.dataset)
    remainder = -1
    if even_batches and not loader.drop_last and total and length % total:
        remainder = length % total
    return PreparedDataLoader(sharded, gradient_state, device, per_process, total, remainder, sync, targets, position)


def skip_first_batches(loader: PreparedDataLoader, num_batches: int) -> PreparedDataLoader:
    """A loader like ``loader`` whose iteration starts after its first ``num_batches`` batches (for resuming).

    After ``load_state``, its first pass also has the order of the pass the checkpoint was taken in (see
    ``accel.data_position``). It shares ``loader``'s data position, so a later ``save_state`` records where the
    resumed pass is."""
    inner = loader.base_loader
    if inner.batch_sampler is None:
        raise ValueError("skip_first_batches needs a DataLoader over a map-style dataset (with a batch sampler)")
    return PreparedDataLoader(
        inner, loader.gradient_state, loader.device, loader.batch_size, loader.total_batch_size,
        loader.remainder, loader._sync_seed, loader._epoch_targets, loader.position, loader._skip + num_batches,
    )


__all__ = ["CollateRound", "PreparedDataLoader", "RoundBatches", "ShardedBatchSampler", "ShardedIterableDataset",
           "prepare_data_loader", "skip_first_batches"]
