"""Output check, invariants 1 and 2: loops over loaders that are not prepared, and gathers over their batches."""

from __future__ import annotations

from textwrap import dedent

from accel_convert.check import check

HEAD = """\
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from accel import Accelerator

accelerator = Accelerator()
device = accelerator.device
data = TensorDataset(torch.randn(16, 4), torch.randint(0, 2, (16,)))
train_loader = DataLoader(data, batch_size=4, shuffle=True)
val_loader = DataLoader(data, batch_size=8)
model = torch.nn.Linear(4, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
"""

TRAIN = """\
for x, y in train_loader:
    optimizer.zero_grad()
    loss = F.cross_entropy(model(x), y)
    accelerator.backward(loss)
    optimizer.step()
"""


def _invariants(after: str, before: str | None = None):
    return [(v.invariant, v.binding) for v in check(before or after, after)]


def test_a_loop_over_an_unprepared_loader_without_moves_feeding_the_prepared_model():
    after = HEAD + "model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)\n" + TRAIN
    after += dedent(
        """\
        with torch.no_grad():
            for x, y in val_loader:
                print((model(x).argmax(1) == y).sum().item())
        """
    )
    violations = check(after, after)
    assert [(v.invariant, v.binding, v.scope) for v in violations] == [("unprepared-loader", "val_loader", "")]
    assert violations[0].line == after.splitlines().index("    for x, y in val_loader:") + 1
    assert "unprepared-loader" in violations[0].message and "`val_loader`" in violations[0].message


def test_the_unprepared_loader_reaches_the_loop_through_a_helper_parameter():
    after = HEAD + dedent(
        """\
        def evaluate(model, loader):
            hits = 0
            for x, y in loader:
                hits += (model(x).argmax(1) == y).sum().item()
            return hits


        model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)
        """
    ) + TRAIN + "print(evaluate(model, val_loader))\n"
    assert _invariants(after) == [("unprepared-loader", "val_loader")]


def test_an_unprepared_loader_that_keeps_its_moves_or_is_prepared_passes():
    moved = HEAD + "model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)\n" + TRAIN
    moved += dedent(
        """\
        for x, y in val_loader:
            x, y = x.to(accelerator.device), y.to(accelerator.device)
            print((model(x).argmax(1) == y).sum().item())
        """
    )
    assert _invariants(moved) == []
    prepared = HEAD + dedent(
        """\
        model, optimizer, train_loader, val_loader = accelerator.prepare(model, optimizer, train_loader, val_loader)
        """
    ) + TRAIN + "for x, y in val_loader:\n    print((model(x).argmax(1) == y).sum().item())\n"
    assert _invariants(prepared) == []


def test_a_loop_over_a_raw_loader_that_trains_nothing_prepared_passes():
    after = HEAD + "model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)\n" + TRAIN
    after += "total = 0\nfor x, y in val_loader:\n    total += y.sum().item()\n"
    assert _invariants(after) == []


def test_a_gather_over_batches_of_an_unprepared_loader():
    after = HEAD + "model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)\n" + TRAIN
    after += dedent(
        """\
        correct = 0
        for x, y in val_loader:
            x, y = x.to(device), y.to(device)
            outputs = model(x)
            outputs, y = accelerator.gather_for_metrics((outputs, y))
            correct += (outputs.argmax(1) == y).sum().item()
        """
    )
    violations = check(after, after)
    assert [(v.invariant, v.binding) for v in violations] == [("gather-unprepared", "val_loader")]
    assert violations[0].line == after.splitlines().index(
        "    outputs, y = accelerator.gather_for_metrics((outputs, y))"
    ) + 1


def test_a_gather_where_prepare_was_declined_altogether():
    """Shape 1 of issue 9: no prepare (a loop peeked at a batch before the model existed), a gather inserted."""
    after = dedent(
        """\
        import torch
        from torch.utils.data import DataLoader, TensorDataset
        from accel import Accelerator


        def evaluate(model, loader, accelerator):
            correct = 0
            for x, y in loader:
                x, y = x.to(accelerator.device), y.to(accelerator.device)
                predictions = model(x).argmax(1)
                predictions, y = accelerator.gather_for_metrics((predictions, y))
                correct += (predictions == y).sum().item()
            return correct


        def main():
            accelerator = Accelerator()
            loader = DataLoader(TensorDataset(torch.randn(8, 4), torch.randint(0, 2, (8,))), batch_size=4)
            print(next(iter(loader))[0].shape)
            model = torch.nn.Linear(4, 2).to(accelerator.device)
            print(evaluate(model, loader, accelerator))
        """
    )
    assert [(v.invariant, v.binding, v.scope) for v in check(after, after)] == [
        ("gather-unprepared", "loader", "main")
    ]


def test_gathers_over_prepared_loaders_pass_also_in_comprehensions_and_helpers():
    after = HEAD + dedent(
        """\
        model, optimizer, train_loader, val_loader = accelerator.prepare(model, optimizer, train_loader, val_loader)


        def step(x, y):
            outputs = model(x)
            return accelerator.gather_for_metrics((outputs, y))


        """
    ) + TRAIN + dedent(
        """\
        preds = torch.cat([accelerator.gather_for_metrics(model(x).argmax(1)) for x, _ in val_loader])
        for x, y in val_loader:
            print(step(x, y))
        """
    )
    assert _invariants(after) == []


def test_a_gather_in_a_comprehension_over_an_unprepared_loader():
    after = HEAD + "model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)\n" + TRAIN
    after += "labels = torch.cat([accelerator.gather_for_metrics(y.to(device)) for _, y in val_loader])\n"
    assert _invariants(after) == [("gather-unprepared", "val_loader")]


def test_a_loader_prepared_together_with_the_model_under_a_condition_passes():
    after = dedent(
        """\
        import torch
        from torch.utils.data import DataLoader, TensorDataset
        from accel import Accelerator


        def train(use_accelerator):
            model = torch.nn.Linear(4, 1)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            loader = DataLoader(TensorDataset(torch.randn(8, 4), torch.randn(8, 1)), batch_size=4)
            if use_accelerator:
                accelerator = Accelerator(cpu=True)
                model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
            for i, (x, y) in enumerate(loader):
                loss = torch.nn.functional.mse_loss(model(x), y)
                loss.backward()
                optimizer.step()
        """
    )
    assert _invariants(after) == []


def test_a_helper_called_before_prepare_with_the_raw_loader_and_after_with_the_prepared_one():
    """evaluate(model, val_loader) once before the prepare that follows the optimizer: the first call gathers and
    computes over the raw loader (each process evaluates all of it), with its batch moves removed."""
    before = dedent(
        """\
        import torch
        from torch.utils.data import DataLoader, TensorDataset


        def evaluate(model, loader, device):
            correct = 0
            for x, y in loader:
                x, y = x.to(device), y.to(device)
                correct += (model(x).argmax(1) == y).sum().item()
            return correct


        def main():
            device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
            data = TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,)))
            train_loader, val_loader = DataLoader(data, batch_size=8), DataLoader(data, batch_size=8)
            model = torch.nn.Linear(4, 2).to(device)
            print(evaluate(model, val_loader, device))
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            for x, y in train_loader:
                x, y = x.to(device), y.to(device)
                loss = torch.nn.functional.cross_entropy(model(x), y)
                loss.backward()
                optimizer.step()
            print(evaluate(model, val_loader, device))
        """
    )
    after = dedent(
        """\
        import torch
        from torch.utils.data import DataLoader, TensorDataset
        from accel import Accelerator


        def evaluate(model, loader, device, accelerator):
            correct = 0
            for x, y in loader:
                outputs = model(x)
                outputs, y = accelerator.gather_for_metrics((outputs, y))
                correct += (outputs.argmax(1) == y).sum().item()
            return correct


        def main():
            accelerator = Accelerator()
            device = accelerator.device
            data = TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,)))
            train_loader, val_loader = DataLoader(data, batch_size=8), DataLoader(data, batch_size=8)
            model = torch.nn.Linear(4, 2)
            accelerator.print(evaluate(model, val_loader, device, accelerator))
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            model, optimizer, train_loader, val_loader = accelerator.prepare(model, optimizer, train_loader, val_loader)
            for x, y in train_loader:
                loss = torch.nn.functional.cross_entropy(model(x), y)
                accelerator.backward(loss)
                optimizer.step()
            accelerator.print(evaluate(model, val_loader, device, accelerator))
        """
    )
    assert sorted(_invariants(after, before)) == [
        ("gather-unprepared", "val_loader"),
        ("move-of-unprepared", "val_loader"),
        ("unprepared-loader", "val_loader"),
    ]


def test_a_model_sized_from_a_peeked_batch_is_not_a_batch():
    """`sample, _ = next(iter(loader))` before the prepare sizes the model: the gather over the model's outputs in
    an evaluation of a prepared loader is no gather over the raw loader's batches."""
    after = dedent(
        """\
        import torch
        from torch.utils.data import DataLoader, TensorDataset
        from accel import Accelerator


        def evaluate(model, loader, accelerator):
            correct = 0
            for x, y in loader:
                outputs = model(x)
                outputs, y = accelerator.gather_for_metrics((outputs, y))
                correct += (outputs.argmax(1) == y).sum().item()
            return correct


        def main():
            accelerator = Accelerator()
            data = TensorDataset(torch.randn(96, 4), torch.randint(0, 2, (96,)))
            loader = DataLoader(data, batch_size=8, shuffle=True)
            test_loader = DataLoader(data, batch_size=16)
            sample, _ = next(iter(loader))
            model = torch.nn.Linear(sample.shape[1], 2)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            model, optimizer, loader, test_loader = accelerator.prepare(model, optimizer, loader, test_loader)
            print(evaluate(model, test_loader, accelerator))
        """
    )
    assert _invariants(after) == []
