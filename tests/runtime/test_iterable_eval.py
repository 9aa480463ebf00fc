"""``gather_for_metrics`` over an IterableDataset without ``__len__`` under two gloo processes: every sample is
evaluated exactly once and the metric equals one process's (workers/iterable_eval.py, one launch for all)."""

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from accel.data import prepare_data_loader
from accel.state import GradientState
from tests.launching import launch
from tests.runtime.workers.iterable_eval import Stream

WORKER = Path(__file__).parent / "workers" / "iterable_eval.py"
CASES = (10, 7, 12)  # samples; batches of 3 per process make rounds of 6: 4, 1 and 0 real samples in the last


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("iterable_eval")
    proc = launch(WORKER, out, timeout=120)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return [torch.load(out / f"rank{r}.pt") for r in (0, 1)]


def _one_process_mse(n):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    with torch.no_grad():
        errors = [(model(x) - y).pow(2).sum(1) for _, x, y in DataLoader(Stream(n), batch_size=3)]
    return torch.cat(errors).mean().item()


@pytest.mark.parametrize("n", CASES)
def test_every_sample_is_gathered_once_and_the_metric_is_one_process(ranks, n):
    for result in ranks:
        assert sorted(result[n]["indices"]) == list(range(n))
        assert sorted(result[n]["objects"]) == list(range(n))
        assert result[n]["mse"] == pytest.approx(_one_process_mse(n), rel=1e-6)


def test_the_remainder_is_counted_while_reading_not_taken_from_a_length():
    loader = prepare_data_loader(DataLoader(Stream(10), batch_size=3), GradientState(1), 2, 1, None, lambda s: s)
    assert loader.remainder == -1  # unknown before the pass
    batches = [index.tolist() for index, _, _ in loader]
    assert batches == [[3, 4, 5], [9, 0, 1]]  # the last round: 6..9 real, then the epoch's first samples again
    assert loader.remainder == 4


@pytest.mark.parametrize(("split", "drop_last", "batches", "remainder"), [
    (True, False, [[2, 3], [6, 7], [0, 1]], 2),  # rounds of one batch of 4, split in halves: 8, 9 real, then 0, 1
    (False, True, [[3, 4, 5]], -1),  # the short last round is dropped: nothing to trim
])
def test_split_batches_and_drop_last_count_rounds_too(split, drop_last, batches, remainder):
    loader = DataLoader(Stream(10), batch_size=4 if split else 3, drop_last=drop_last)
    prepared = prepare_data_loader(loader, GradientState(1), 2, 1, None, lambda s: s, split_batches=split)
    assert [index.tolist() for index, _, _ in prepared] == batches
    assert prepared.remainder == remainder


class SizedStream(Stream):
    def __len__(self):
        return self.n


@pytest.mark.parametrize(("n", "rank", "even", "drop_last"), [
    (10, 1, True, False), (7, 1, False, False), (7, 0, False, False), (7, 1, True, True), (12, 1, True, False),
])
def test_len_is_the_number_of_batches_when_the_dataset_has_a_length(n, rank, even, drop_last):
    loader = DataLoader(SizedStream(n), batch_size=3, drop_last=drop_last)
    prepared = prepare_data_loader(loader, GradientState(1), 2, rank, None, lambda s: s, even_batches=even)
    assert len(prepared) == len(list(prepared))


def test_len_without_a_dataset_length_is_a_type_error_as_in_pytorch():
    prepared = prepare_data_loader(DataLoader(Stream(4), batch_size=3), GradientState(1), 2, 0, None, lambda s: s)
    with pytest.raises(TypeError, match="has no len"):
        len(prepared)
