"""Output check, invariant 5: no removed device move of an object that is not prepared."""

from __future__ import annotations

from textwrap import dedent

from accel_convert.check import check

BEFORE = dedent(
    """\
    import torch
    import torch.nn as nn
    from torch.utils.data import DataLoader, TensorDataset

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


    def build(device):
        net = nn.Linear(4, 2)
        net.to(device)
        return net


    def main():
        data = TensorDataset(torch.randn(16, 4), torch.randint(0, 2, (16,)))
        train_loader = DataLoader(data, batch_size=4, shuffle=True)
        val_loader = DataLoader(data, batch_size=8)
        model = build(device)
        criterion = nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0])).to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in train_loader:
            x, y = x.to(device), y.to(device)
            mask = torch.ones(4).to(device)
            loss = criterion(model(x * mask), y)
            loss.backward()
            optimizer.step()
        for batch in val_loader:
            batch = [t.to(device) for t in batch]
            print(model(batch[0]).sum().item())
    """
)

AFTER = dedent(
    """\
    import torch
    import torch.nn as nn
    from torch.utils.data import DataLoader, TensorDataset
    from accel import Accelerator

    accelerator = Accelerator()
    device = accelerator.device


    def build(device):
        net = nn.Linear(4, 2)
        return net


    def main():
        data = TensorDataset(torch.randn(16, 4), torch.randint(0, 2, (16,)))
        train_loader = DataLoader(data, batch_size=4, shuffle=True)
        val_loader = DataLoader(data, batch_size=8)
        model = build(device)
        criterion = nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0])).to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        model, optimizer, train_loader, val_loader = accelerator.prepare(model, optimizer, train_loader, val_loader)
        for x, y in train_loader:
            mask = torch.ones(4).to(accelerator.device)
            loss = criterion(model(x * mask), y)
            accelerator.backward(loss)
            optimizer.step()
        for batch in val_loader:
            print(model(batch[0]).sum().item())
    """
)


def _found(after: str, before: str = BEFORE):
    return [(v.invariant, v.binding) for v in check(before, after)]


def test_the_correct_conversion_passes():
    """The model's move in its factory and the batches' moves go; the mask's move is rewritten, not removed."""
    assert _found(AFTER) == []


def test_batch_moves_removed_from_a_loop_over_a_loader_left_unprepared():
    after = AFTER.replace(
        "model, optimizer, train_loader, val_loader = accelerator.prepare(model, optimizer, train_loader, val_loader)",
        "model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)",
    )
    violations = check(BEFORE, after)
    assert [(v.invariant, v.binding, v.scope) for v in violations] == [
        ("move-of-unprepared", "val_loader", "main"),
        ("unprepared-loader", "val_loader", "main"),
    ]
    assert {v.line for v in violations} == {after.splitlines().index("    for batch in val_loader:") + 1}
    assert "`t.to(device)` (line 28 of the original)" in violations[0].message


def test_a_removed_move_of_a_tensor_the_script_makes():
    after = AFTER.replace("torch.ones(4).to(accelerator.device)", "torch.ones(4)")
    assert _found(after) == [("move-of-unprepared", "mask")]


def test_a_removed_move_of_a_loss_module_with_weights():
    after = AFTER.replace(".to(device)\n", "\n", 1)
    violations = check(BEFORE, after)
    assert [(v.invariant, v.binding) for v in violations] == [("move-of-unprepared", "criterion")]
    assert violations[0].line == after.splitlines().index(
        "    criterion = nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0]))"
    ) + 1


def test_a_removed_move_of_a_model_that_is_not_prepared():
    loop = "    for x, y in train_loader:"
    before = BEFORE.replace(loop, "    teacher = nn.Linear(4, 2).to(device)\n" + loop)
    after = AFTER.replace(loop, "    teacher = nn.Linear(4, 2)\n" + loop)
    assert _found(after, before) == [("move-of-unprepared", "teacher")]
    kept = AFTER.replace(loop, "    teacher = nn.Linear(4, 2).to(device)\n" + loop)
    assert _found(kept, before) == []


def test_moves_of_batches_passed_to_a_helper_and_of_a_self_model():
    before = dedent(
        """\
        import torch
        from torch.utils.data import DataLoader, TensorDataset


        class Trainer:
            def __init__(self, model, loader, device):
                self.device = device
                self.model = model.to(device)
                self.loader = loader
                self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1)

            def step(self, x, y):
                x, y = x.to(self.device), y.to(self.device)
                loss = torch.nn.functional.mse_loss(self.model(x), y)
                loss.backward()
                self.optimizer.step()

            def fit(self):
                for x, y in self.loader:
                    self.step(x, y)


        loader = DataLoader(TensorDataset(torch.randn(8, 2), torch.randn(8, 1)), batch_size=4)
        Trainer(torch.nn.Linear(2, 1), loader, "cuda").fit()
        """
    )
    after = dedent(
        """\
        import torch
        from torch.utils.data import DataLoader, TensorDataset
        from accel import Accelerator


        class Trainer:
            def __init__(self, model, loader, device):
                self.accelerator = Accelerator()
                self.device = self.accelerator.device
                self.model = model
                self.loader = loader
                self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1)
                self.model, self.optimizer, self.loader = self.accelerator.prepare(
                    self.model, self.optimizer, self.loader
                )

            def step(self, x, y):
                loss = torch.nn.functional.mse_loss(self.model(x), y)
                self.accelerator.backward(loss)
                self.optimizer.step()

            def fit(self):
                for x, y in self.loader:
                    self.step(x, y)


        loader = DataLoader(TensorDataset(torch.randn(8, 2), torch.randn(8, 1)), batch_size=4)
        Trainer(torch.nn.Linear(2, 1), loader, "cuda").fit()
        """
    )
    assert _found(after, before) == []
    unprepared = after.replace(", self.loader = self.accelerator", " = self.accelerator").replace(
        "self.model, self.optimizer, self.loader\n", "self.model, self.optimizer\n"
    )
    violations = check(before, unprepared)  # x and y: one violation for their statement
    assert [(v.invariant, v.binding, v.scope) for v in violations] == [
        ("move-of-unprepared", "loader", "")  # the DataLoader(...) where it is made, at module level
    ]
    assert violations[0].line == unprepared.splitlines().index("        for x, y in self.loader:") + 1


def test_batches_of_a_module_level_loader_iterated_in_a_function_through_enumerate_and_a_dict_comprehension():
    """pytorch/examples vae's shape: loaders and prepare at module level, `for i, (data, _) in enumerate(...)` in
    train(); dict batches moved by a comprehension."""
    before = dedent(
        """\
        import torch
        from torch.utils.data import DataLoader

        device = torch.device("cuda")
        train_loader = DataLoader([{"x": torch.randn(3)} for _ in range(8)], batch_size=4)
        model = torch.nn.Linear(3, 1).to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)


        def train(epoch):
            for batch_idx, batch in enumerate(train_loader):
                batch = {k: v.to(device) for k, v in batch.items()}
                loss = model(batch["x"]).sum()
                loss.backward()
                optimizer.step()


        for epoch in range(2):
            train(epoch)
        """
    )
    after = dedent(
        """\
        import torch
        from torch.utils.data import DataLoader
        from accel import Accelerator

        accelerator = Accelerator()
        device = accelerator.device
        train_loader = DataLoader([{"x": torch.randn(3)} for _ in range(8)], batch_size=4)
        model = torch.nn.Linear(3, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)


        def train(epoch):
            for batch_idx, batch in enumerate(train_loader):
                loss = model(batch["x"]).sum()
                accelerator.backward(loss)
                optimizer.step()


        for epoch in range(2):
            train(epoch)
        """
    )
    assert _found(after, before) == []
    unprepared = after.replace(
        "model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)",
        "model, optimizer = accelerator.prepare(model, optimizer)",
    )
    assert [(v.invariant, v.binding, v.scope) for v in check(before, unprepared)] == [
        ("move-of-unprepared", "train_loader", ""),
        ("unprepared-loader", "train_loader", ""),
    ]


def test_a_move_in_a_factorys_return_of_a_prepared_model_passes_and_of_an_unprepared_one_fails():
    before = dedent(
        """\
        import torch

        def make_model():
            return torch.nn.Linear(3, 1).to("cuda")

        def make_teacher():
            return torch.nn.Linear(3, 1).to("cuda")

        model = make_model()
        teacher = make_teacher()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        """
    )
    after = dedent(
        """\
        import torch
        from accel import Accelerator

        def make_model():
            return torch.nn.Linear(3, 1)

        def make_teacher():
            return torch.nn.Linear(3, 1)

        accelerator = Accelerator()
        model = make_model()
        teacher = make_teacher()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        model, optimizer = accelerator.prepare(model, optimizer)
        """
    )
    found = check(before, after)
    assert [v.invariant for v in found] == ["move-of-unprepared"]
    assert "line 7 of the original" in found[0].message


def test_a_removed_move_in_a_peek_at_the_loader_before_its_prepare():
    """The loop before the prepare iterates the loader as it was made: its batch move must stay, whatever the
    loops after the prepare over the same name do."""
    before = dedent(
        """\
        import torch
        from torch.utils.data import DataLoader

        device = "cuda"
        loader = DataLoader(torch.randn(8, 3), batch_size=2)
        for x in loader:
            x = x.to(device)
            width = x.shape[1]
            break
        model = torch.nn.Linear(width, 1).to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for x in loader:
            x = x.to(device)
            model(x).sum().backward()
            optimizer.step()
        """
    )
    converted = dedent(
        """\
        import torch
        from torch.utils.data import DataLoader
        from accel import Accelerator

        accelerator = Accelerator()
        device = accelerator.device
        loader = DataLoader(torch.randn(8, 3), batch_size=2)
        for x in loader:
            {peek}
            width = x.shape[1]
            break
        model = torch.nn.Linear(width, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
        for x in loader:
            accelerator.backward(model(x).sum())
            optimizer.step()
        """
    )
    kept = converted.format(peek="x = x.to(device)")
    assert check(before, kept) == []
    removed = converted.format(peek="pass")
    found = check(before, removed)
    assert [(v.invariant, v.binding) for v in found] == [("move-of-unprepared", "loader")]
    assert found[0].line == removed.splitlines().index("for x in loader:") + 1
