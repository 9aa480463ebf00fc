"""Two CPU processes under `accel launch`: DDP equivalence, accumulation, gather_for_metrics, sharding, collectives.

One launch of workers/distributed_checks.py serves every test here; each process leaves what it saw in rank<R>.pt.
"""

from pathlib import Path

import pytest
import torch

from tests.launching import launch

WORKER = Path(__file__).parent / "workers" / "distributed_checks.py"


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("distributed")
    proc = launch(WORKER, out, num_processes=2, timeout=180)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = [torch.load(out / f"rank{r}.pt") for r in (0, 1)]
    return results, out, proc


def _data(n=16):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 4, generator=g), torch.randn(n, 1, generator=g)


def _one_process_training(batch_rows, lrs=None):
    """Plain PyTorch on one process: SGD steps (learning rates ``lrs``) on the given rows of the concatenated data."""
    x, y = _data()
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for step, rows in enumerate(batch_rows):
        if lrs:
            optimizer.param_groups[0]["lr"] = lrs[step]
        torch.nn.functional.mse_loss(model(x[rows]), y[rows]).backward()
        optimizer.step()
        optimizer.zero_grad()
    return [p.detach() for p in model.parameters()]


def test_process_state(ranks):
    results, _, _ = ranks
    for rank, r in enumerate(results):
        assert r["state"] == {"rank": rank, "world": 2, "local": rank, "device": "cpu",
                              "distributed_type": "MULTI_CPU", "main": rank == 0, "local_main": rank == 0}


def test_ddp_matches_one_process_on_concatenated_batches(ranks):
    results, _, _ = ranks
    # each process takes 4 rows per step: step 1 sees rows 0-7 across both, step 2 rows 8-15;
    # the StepLR(gamma=0.5) stepped twice (once per process) after step 1
    expected = _one_process_training([slice(0, 8), slice(8, 16)], lrs=[0.1, 0.025])
    assert results[0]["train_batches"] == 2
    for r in results:
        for got, want in zip(r["ddp_params"], expected):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_scheduler_steps_once_per_process_per_call(ranks):
    results, _, _ = ranks
    assert [r["scheduler_last_epoch"] for r in results] == [4, 4]  # 2 optimizer steps x 2 processes


def test_accumulate_syncs_only_on_the_last_micro_batch_and_equals_one_big_step(ranks):
    results, _, _ = ranks
    r0, r1 = results
    assert r0["accumulate_syncs"] == r1["accumulate_syncs"] == [False, True]
    # after the non-sync backward each process holds only its own gradient
    assert not torch.allclose(r0["accumulate_grads"][0], r1["accumulate_grads"][0])
    # after the sync backward they hold the same, all-reduced gradient
    torch.testing.assert_close(r0["accumulate_grads"][1], r1["accumulate_grads"][1], rtol=0, atol=0)
    expected = _one_process_training([slice(0, 16)])
    for r in results:
        for got, want in zip(r["accumulate_params"], expected):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_gather_for_metrics_returns_the_dataset_once_in_order(ranks):
    results, _, _ = ranks
    for r in results:
        assert r["gather_for_metrics"] == list(range(10))  # 10 samples, 2 processes x 3 per batch
        assert r["gather_for_metrics_objects"] == [f"s{i}" for i in range(10)]
        assert r["split_gathered"] == list(range(10))  # split_batches: batches of 4 split in 2


def test_split_batches_gives_each_process_its_slice_of_each_batch(ranks):
    results, _, _ = ranks
    assert results[0]["split_len"] == 3
    assert results[0]["split_batches"] == [[0, 1], [4, 5], [8, 9]]
    assert results[1]["split_batches"] == [[2, 3], [6, 7], [0, 1]]  # last batch (8, 9) completed from the start


def test_shuffled_loader_agrees_across_processes_and_covers_each_sample_once(ranks):
    results, _, _ = ranks
    r0, r1 = results
    assert r0["shuffled_epochs"] == r1["shuffled_epochs"]  # same order although the global RNGs differ
    for epoch in r0["shuffled_epochs"]:
        assert sorted(epoch) == list(range(12))
    assert r0["shuffled_epochs"][0] != r0["shuffled_epochs"][1]  # reshuffled every epoch
    local = r0["shuffled_local"] + r1["shuffled_local"]
    assert sorted(i for batch in local for i in batch) == list(range(12))  # processes got disjoint batches


def test_collectives(ranks):
    results, _, _ = ranks
    for rank, r in enumerate(results):
        assert r["reduce"]["sum"] == [3.0, 30.0]
        assert r["reduce"]["mean"] == [1.5, 15.0]
        assert r["reduce"]["max"] == [2.0, 20.0]
        assert r["reduce"]["none"] == [rank + 1.0, 10.0 * (rank + 1)]
        assert r["reduce_nested"] == [3.0, 30.0]
        assert r["gather_scalar"] == [0.0, 1.0]
        assert r["gather_nested"] == [0, 0, 1, 1]
        assert r["broadcast"] == [6]
    assert results[0]["pad"] == [[1, 1], [-1, -1]]
    assert results[0]["pad_first"] == [[-1, -1], [1, 1]]
    assert results[1]["pad"] == [[2, 2], [2, 2]]


def test_split_between_processes(ranks):
    results, _, _ = ranks
    assert [r["split_list"] for r in results] == [[0, 1, 2], [3, 4]]
    assert results[0]["split_dict_padded"] == {"a": [1, 2], "b": [0, 1]}
    assert results[1]["split_dict_padded"] == {"a": [3, 3], "b": [2, 2]}  # padded by repeating the last item


def test_process_control(ranks):
    results, out, proc = ranks
    assert (out / "order.txt").read_text().split() == ["0", "1"]  # main_process_first
    assert results[0]["decorated"] == ["main", "local main", None]
    assert results[1]["decorated"] == [None, None, "second"]
    assert proc.stdout.count("printed by rank") == 1 and "printed by rank 0" in proc.stdout
    assert [r["saved"] for r in results] == [{"rank": 0}, {"rank": 0}]  # only the main process saved
    assert results[0]["leftover_tmp"] == []
    assert results[0]["state_dict_keys"] == ["bias", "weight"]  # unwrapped from DDP: no "module." prefix
