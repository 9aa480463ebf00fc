"""AC021 on random splits made before training: named where the generator they draw from is not seeded alike in
every process, silent where it is (or where they get their own generator, or run inside a loop)."""

from __future__ import annotations

import pytest

from accel_convert.convert import convert_source

TEMPLATE = '''\
import random

import numpy as np
import torch
{imports}
from torch.utils.data import DataLoader, TensorDataset, random_split


def main():
{setup}
    data = TensorDataset(torch.arange(40.0).unsqueeze(1), torch.arange(40.0).unsqueeze(1))
{split}
    loader = DataLoader(data, batch_size=4, shuffle=True)
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for epoch in range(2):
{in_loop}
        for x, y in loader:
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()


if __name__ == "__main__":
    main()
'''


def _split_diagnostics(split, setup="    pass", imports="", in_loop="        pass"):
    source = TEMPLATE.format(split=split, setup=setup, imports=imports, in_loop=in_loop)
    result = convert_source(source)
    return [d for d in result.diagnostics if d.code == "AC021"]


@pytest.mark.parametrize(
    ("split", "named", "fix"),
    [
        ("    train, val = random_split(data, [30, 10])", "`random_split(...)`", "`generator=torch.Generator().manual_seed(...)`"),
        ("    order = np.random.permutation(40)", "`np.random.permutation(...)`", "`np.random.seed(...)` before it"),
        ("    order = torch.randperm(40)", "`torch.randperm(...)`", "`torch.manual_seed(...)` before it"),
        ("    rows = list(range(40))\n    random.shuffle(rows)", "`random.shuffle(...)`", "`random.seed(...)` before it"),
    ],
    ids=["random_split", "np-permutation", "randperm", "random-shuffle"],
)
def test_an_unseeded_split_is_named(split, named, fix):
    (diagnostic,) = _split_diagnostics(split)
    assert diagnostic.message.startswith(named)
    assert "which nothing seeds before it" in diagnostic.message
    assert "each process splits differently" in diagnostic.message
    assert fix in diagnostic.message


def test_train_test_split_without_random_state():
    (diagnostic,) = _split_diagnostics(
        "    train, val = train_test_split(list(range(40)), test_size=0.25)",
        imports="from sklearn.model_selection import train_test_split",
    )
    assert "`random_state=...`" in diagnostic.message
    assert not _split_diagnostics(
        "    train, val = train_test_split(list(range(40)), test_size=0.25, random_state=0)",
        imports="from sklearn.model_selection import train_test_split",
    )


def test_hugging_face_dataset_shuffle_without_a_seed():
    (diagnostic,) = _split_diagnostics("    table = load_dataset('csv').shuffle()", imports="from datasets import load_dataset")
    assert diagnostic.message.startswith("`load_dataset('csv').shuffle(...)` draws from NumPy's global random generator")
    assert not _split_diagnostics("    table = load_dataset('csv').shuffle(seed=1)", imports="from datasets import load_dataset")


def test_an_unseeded_generator_used_for_a_split():
    (diagnostic,) = _split_diagnostics("    rng = np.random.default_rng()\n    order = rng.permutation(40)")
    assert diagnostic.message.startswith("`rng.permutation(...)` draws from a generator made without a seed")
    assert not _split_diagnostics("    rng = np.random.default_rng(0)\n    order = rng.permutation(40)")


@pytest.mark.parametrize(
    ("setup", "split"),
    [
        ("    torch.manual_seed(0)", "    train, val = random_split(data, [30, 10])"),
        ("    pass", "    train, val = random_split(data, [30, 10], generator=torch.Generator().manual_seed(0))"),
        ("    np.random.seed(1)", "    order = np.random.permutation(40)"),
        ("    seed_all(3)", "    order = np.random.permutation(40)\n    train, val = random_split(data, [30, 10])"),
    ],
    ids=["torch-seeded", "own-generator", "numpy-seeded", "seeded-in-a-helper"],
)
def test_a_seeded_split_is_not_named(setup, split):
    source_helper = "\n\ndef seed_all(seed):\n    np.random.seed(seed)\n    torch.manual_seed(seed)\n"
    source = TEMPLATE.format(split=split, setup=setup, imports="", in_loop="        pass") + source_helper
    assert not [d for d in convert_source(source).diagnostics if d.code == "AC021"]


def test_a_seed_after_the_split_does_not_count():
    (diagnostic,) = _split_diagnostics("    train, val = random_split(data, [30, 10])\n    torch.manual_seed(0)")
    assert "which nothing seeds before it" in diagnostic.message


def test_a_seed_under_an_option_is_named_with_its_condition():
    (diagnostic,) = _split_diagnostics(
        "    train, val = random_split(data, [30, 10])", setup="    seed = 4\n    if seed is not None:\n        torch.manual_seed(seed)"
    )
    assert "which is seeded only under `if seed is not None:`" in diagnostic.message


def test_a_permutation_every_epoch_is_not_a_split():
    assert not _split_diagnostics("    pass", in_loop="        order = torch.randperm(40)")
