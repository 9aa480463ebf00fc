"""Output check, invariant 3: the loss reaches accelerator.backward through the prepared model."""

from __future__ import annotations

from textwrap import dedent

from accel_convert.check import check

HEAD = """\
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from accel import Accelerator

accelerator = Accelerator()
loader = DataLoader(TensorDataset(torch.randn(16, 4), torch.randint(0, 2, (16,))), batch_size=4)
model = torch.nn.Linear(4, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
"""


def _found(after: str):
    return [(v.invariant, v.binding) for v in check(after, after)]


def test_a_loss_computed_through_unwrap_model_method():
    """Shape 5b of issue 9: CleanRL's `agent.get_action_and_value(...)` reached through unwrap_model."""
    after = dedent(
        """\
        import torch
        from accel import Accelerator


        class Agent(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.critic = torch.nn.Linear(4, 1)

            def get_value(self, x):
                return self.critic(x)


        accelerator = Accelerator()
        agent = Agent()
        optimizer = torch.optim.Adam(agent.parameters())
        agent, optimizer = accelerator.prepare(agent, optimizer)
        for step in range(3):
            obs = torch.randn(8, 4)
            value = accelerator.unwrap_model(agent).get_value(obs)
            loss = (value ** 2).mean()
            optimizer.zero_grad()
            accelerator.backward(loss)
            optimizer.step()
        """
    )
    violations = check(after, after)
    assert [(v.invariant, v.binding) for v in violations] == [("backward-unwrapped", "agent")]
    assert violations[0].line == after.splitlines().index(
        "    value = accelerator.unwrap_model(agent).get_value(obs)"
    ) + 1


def test_a_loss_through_a_name_bound_to_the_unwrapped_model_or_through_a_helper():
    after = HEAD + dedent(
        """\
        model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
        raw = accelerator.unwrap_model(model)


        def compute_loss(x, y):
            return F.cross_entropy(raw(x), y)


        for x, y in loader:
            loss = compute_loss(x, y)
            accelerator.backward(loss)
            optimizer.step()
        """
    )
    assert _found(after) == [("backward-unwrapped", "model")]


def test_unwrap_model_for_the_state_dict_or_parameters_passes():
    after = HEAD + dedent(
        """\
        model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
        for x, y in loader:
            penalty = sum(p.pow(2).sum() for p in accelerator.unwrap_model(model).parameters())
            loss = F.cross_entropy(model(x), y) + 1e-4 * penalty
            accelerator.backward(loss)
            optimizer.step()
        weights = accelerator.unwrap_model(model).state_dict()
        """
    )
    assert _found(after) == []


def test_the_model_without_ddp_idiom_trains_the_name_that_is_not_prepared():
    """Shape 5a of issue 9: the prepare result bound to the alias while the loop trains `model`."""
    after = HEAD + dedent(
        """\
        model_without_ddp = model
        model_without_ddp, optimizer, loader = accelerator.prepare(model_without_ddp, optimizer, loader)
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            accelerator.backward(loss)
            optimizer.step()
        """
    )
    violations = check(after, after)
    assert [(v.invariant, v.binding) for v in violations] == [("backward-unwrapped", "model_without_ddp")]
    assert "`model`" in violations[0].message


def test_the_prepare_result_bound_to_another_name_while_a_helper_trains_the_original():
    after = dedent(
        """\
        import torch
        import torch.nn.functional as F
        from accel import Accelerator


        def train_one_epoch(net, optimizer, accelerator):
            for _ in range(2):
                loss = F.mse_loss(net(torch.randn(4, 3)), torch.zeros(4, 1))
                accelerator.backward(loss)
                optimizer.step()


        def main():
            accelerator = Accelerator()
            model = torch.nn.Linear(3, 1)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            model_without_ddp, optimizer = accelerator.prepare(model, optimizer)
            train_one_epoch(model, optimizer, accelerator)
            torch.save(model_without_ddp.state_dict(), "m.pt")
        """
    )
    assert [(v.invariant, v.binding, v.scope) for v in check(after, after)] == [
        ("backward-unwrapped", "model", "main")
    ]


def test_a_trainer_class_that_stores_the_unprepared_model():
    after = dedent(
        """\
        import torch
        from accel import Accelerator


        class Trainer:
            def __init__(self, model, optimizer, accelerator):
                self.model = model
                self.optimizer = optimizer
                self.accelerator = accelerator

            def step(self, x):
                loss = self.model(x).sum()
                self.accelerator.backward(loss)
                self.optimizer.step()


        accelerator = Accelerator()
        net = torch.nn.Linear(3, 1)
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
        wrapped, optimizer = accelerator.prepare(net, optimizer)
        Trainer(net, optimizer, accelerator).step(torch.randn(2, 3))
        """
    )
    assert _found(after) == [("backward-unwrapped", "net")]


def test_the_prepared_name_trained_passes_and_an_untrained_alias_is_fine():
    after = HEAD + dedent(
        """\
        ema = model
        model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            accelerator.backward(loss)
            optimizer.step()
        print(ema.weight.sum().item(), ema(torch.randn(1, 4)))
        """
    )
    assert _found(after) == []


def test_a_function_of_the_file_trains_the_global_that_is_not_prepared():
    after = HEAD + dedent(
        """\
        def train():
            for x, y in loader:
                loss = F.cross_entropy(model(x), y)
                accelerator.backward(loss)
                optimizer.step()


        model_without_ddp, optimizer, loader = accelerator.prepare(model, optimizer, loader)
        train()
        """
    )
    violations = check(after, after)
    assert [(v.invariant, v.binding, v.scope) for v in violations] == [("backward-unwrapped", "model", "")]
    assert violations[0].line == after.splitlines().index("        loss = F.cross_entropy(model(x), y)") + 1
    prepared = after.replace("model_without_ddp, optimizer, loader =", "model, optimizer, loader =")
    assert _found(prepared) == []


def test_prepare_model_alone_counts_as_prepare():
    after = HEAD + dedent(
        """\
        wrapped = accelerator.prepare_model(model)
        optimizer, loader = accelerator.prepare(optimizer, loader)
        for x, y in loader:
            accelerator.backward(F.cross_entropy(model(x), y))
            optimizer.step()
        """
    )
    assert _found(after) == [("backward-unwrapped", "model")]
