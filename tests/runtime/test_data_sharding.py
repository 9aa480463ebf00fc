"""Sharding logic of prepared DataLoaders, checked for each process index without starting processes."""

import itertools

import pytest
import torch
from torch.utils.data import BatchSampler, DataLoader, IterableDataset, SequentialSampler

from accel import Accelerator
from accel.data import ShardedBatchSampler, ShardedIterableDataset, prepare_data_loader
from accel.ops import send_to_device
from accel.state import GradientState


def _shards(n, batch_size, processes, drop_last=False, split=False, even=True):
    base = BatchSampler(SequentialSampler(range(n)), batch_size, drop_last)
    samplers = [ShardedBatchSampler(base, processes, r, split, even) for r in range(processes)]
    return samplers, [list(s) for s in samplers]


@pytest.mark.parametrize("n, batch_size, processes", itertools.product([1, 5, 12, 13, 24], [1, 3, 4], [2, 3]))
def test_even_batches_every_process_same_count_full_batches_all_samples_in_order(n, batch_size, processes):
    samplers, shards = _shards(n, batch_size, processes)
    counts = {len(s) for s in shards}
    assert counts == {len(samplers[0])}  # same number of batches everywhere, and len() is right
    assert all(len(b) == batch_size for s in shards for b in s)
    # reading the rounds back process by process gives the dataset in order, then padding from the start
    interleaved = [i for round_ in zip(*shards) for batch in round_ for i in batch]
    assert interleaved[:n] == list(range(n))
    padding = interleaved[n:]
    assert padding == [i % n for i in range(len(padding))]


@pytest.mark.parametrize("n, batch_size, processes", itertools.product([5, 12, 13], [2, 4], [2, 3]))
def test_uneven_and_drop_last_shards(n, batch_size, processes):
    samplers, shards = _shards(n, batch_size, processes, even=False)
    assert [len(s) for s in samplers] == [len(s) for s in shards]
    assert sorted(i for s in shards for b in s for i in b) == list(range(n))  # each sample once, no padding
    samplers, shards = _shards(n, batch_size, processes, drop_last=True)
    assert [len(s) for s in samplers] == [len(s) for s in shards]
    assert len({len(s) for s in shards}) == 1
    assert all(len(b) == batch_size for s in shards for b in s)


@pytest.mark.parametrize("n", [8, 10, 11])
def test_split_batches_slices_each_batch(n):
    samplers, shards = _shards(n, 4, 2, split=True)
    assert [len(s) for s in samplers] == [len(s) for s in shards] == [len(range(0, n, 4))] * 2
    interleaved = [i for round_ in zip(*shards) for batch in round_ for i in batch]
    assert interleaved[:n] == list(range(n))
    assert all(len(b) == 2 for s in shards for b in s)


def test_split_batches_needs_a_multiple_of_the_process_count():
    with pytest.raises(ValueError) as err:
        _shards(10, 3, 2, split=True)
    assert "multiple of the number of processes (2); got batch_size=3" in str(err.value)


class Stream(IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter(range(self.n))


def test_iterable_dataset_shards_and_pads():
    shards = [list(ShardedIterableDataset(Stream(7), 4, 2, r)) for r in range(2)]
    assert shards == [[0, 1, 4, 5], [2, 3, 6, 0]]
    shards = [list(ShardedIterableDataset(Stream(7), 4, 2, r, drop_last=True)) for r in range(2)]
    assert shards == [[0, 1], [2, 3]]


def test_remainder_for_gather_for_metrics_and_per_process_batch_size():
    def prepared(n, batch_size, split=False, even=True, drop_last=False):
        loader = DataLoader(list(range(n)), batch_size=batch_size, drop_last=drop_last)
        return prepare_data_loader(loader, GradientState(1), 2, 0, None, lambda s: s, split, even)

    assert prepared(10, 3).remainder == 4  # rounds of 6: the last round holds 4 real samples
    assert prepared(12, 3).remainder == -1  # nothing padded
    assert prepared(10, 4, split=True).remainder == 2
    assert prepared(10, 3, even=False).remainder == -1
    assert prepared(10, 3, drop_last=True).remainder == -1
    loader = prepared(10, 4, split=True)
    assert (loader.batch_size, loader.total_batch_size) == (2, 4)
    loader = prepared(10, 3)
    assert (loader.batch_size, loader.total_batch_size, len(loader)) == (3, 6, 2)


def test_batch_size_none_cannot_be_sharded():
    loader = DataLoader(list(range(4)), batch_size=None)
    with pytest.raises(ValueError, match="batch_size=None cannot be sharded"):
        prepare_data_loader(loader, GradientState(1), 2, 0, None, lambda s: s)


def test_one_process_loader_yields_the_original_batches_and_forwards_attributes():
    accelerator = Accelerator(cpu=True)
    original = DataLoader(list(range(7)), batch_size=3)
    loader = accelerator.prepare(original)
    assert [b.tolist() for b in loader] == [b.tolist() for b in original]
    assert len(loader) == 3 and loader.dataset is original.dataset and loader.batch_size == 3
    assert isinstance(loader, DataLoader) and loader.num_workers == 0 and loader.sampler is original.sampler
    assert Accelerator(cpu=True).prepare(loader) is loader


class EpochSampler(SequentialSampler):
    epoch = None

    def set_epoch(self, epoch):
        self.epoch = epoch


def test_set_epoch_reaches_the_sampler():
    sampler = EpochSampler(range(4))
    loader = Accelerator(cpu=True).prepare(DataLoader(list(range(4)), batch_size=2, sampler=sampler))
    loader.set_epoch(3)
    assert sampler.epoch == 3


def test_end_of_dataloader_for_sized_and_iterable_loaders_and_nested_loops():
    accelerator = Accelerator(cpu=True)
    sized = accelerator.prepare(DataLoader(list(range(5)), batch_size=2))
    stream = accelerator.prepare(DataLoader(Stream(5), batch_size=2))
    for loader in (sized, stream):
        flags = []
        for _ in loader:
            flags.append(accelerator.gradient_state.end_of_dataloader)
        assert flags == [False, False, True]
    outer_flags = []
    for _ in sized:
        for _ in stream:
            pass  # a complete inner loop must not end the outer one
        outer_flags.append(accelerator.gradient_state.end_of_dataloader)
    assert outer_flags == [False, False, True]
    assert accelerator.gradient_state.active_dataloader is None


def test_send_to_device_walks_nested_batches():
    class Encoding:
        def __init__(self):
            self.moved_to = None

        def to(self, device, non_blocking=False):
            self.moved_to = device
            return self

    batch = {"x": [torch.ones(1), (torch.zeros(1), "label")], "enc": Encoding(), "n": 3}
    out = send_to_device(batch, torch.device("cpu"), non_blocking=True)
    assert out["x"][1][1] == "label" and out["n"] == 3 and out["enc"].moved_to == torch.device("cpu")
    assert torch.equal(out["x"][0], torch.ones(1))
