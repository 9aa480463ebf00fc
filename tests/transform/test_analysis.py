"""Roles are found by qualified name and data flow, never by variable name."""

from __future__ import annotations

import textwrap

import libcst as cst

from accel_convert.analysis.pipeline import analyse
from accel_convert.analysis.roles import DEVICE, LOADER, MODEL, OPTIMIZER, SCHEDULER


def roles(source: str) -> dict[str, str]:
    """``{"scope:key": role}`` for a module."""
    analysis = analyse(cst.parse_module(textwrap.dedent(source)))
    result = {}
    for (holder, key), role in analysis.roles.items():
        owner = getattr(holder, "name", None) or holder.node.name.value
        result[f"{owner}:{key}"] = role
    return result


def test_optimizer_through_every_import_spelling():
    found = roles(
        """
        import torch
        import torch.optim as optim
        from torch import optim as o2
        from torch.optim import Adam as A
        a = torch.optim.SGD(m1.parameters(), lr=1)
        b = optim.Adam(m2.parameters())
        c = o2.AdamW(m3.parameters())
        d = A(m4.parameters())
        """
    )
    for name in "abcd":
        assert found[f"<module>:{name}"] == OPTIMIZER
    for index in range(1, 5):
        assert found[f"<module>:m{index}"] == MODEL


def test_star_imports_resolve_known_names_only():
    found = roles(
        """
        from torch.optim import *
        from torch.optim.lr_scheduler import *
        from torch.utils.data import *
        loader = DataLoader(ds)
        opt = Adagrad(net.parameters())
        sched = ExponentialLR(opt, gamma=0.9)
        mine = Frobnicate(net.parameters())
        """
    )
    assert found["<module>:loader"] == LOADER
    assert found["<module>:opt"] == OPTIMIZER
    assert found["<module>:sched"] == SCHEDULER
    assert "<module>:mine" not in found


def test_names_alone_mean_nothing():
    found = roles(
        """
        import torch
        class Adam:
            def __init__(self, params): ...
        optimizer = Adam(model.parameters())
        model = object()
        loader = [1, 2, 3]
        device = "cuda-like string that is no device"
        """
    )
    assert found == {}


def test_attributes_of_self_in_a_trainer_class():
    found = roles(
        """
        import torch
        from torch.utils.data import DataLoader
        class Trainer:
            def __init__(self, net, data):
                self.net = net
                self.opt = torch.optim.SGD(self.net.parameters(), lr=0.1)
                self.loader = DataLoader(data)
            def fit(self):
                for x in self.loader:
                    self.net(x).sum().backward()
                    self.opt.step()
        """
    )
    assert found["Trainer:self.net"] == MODEL
    assert found["Trainer:self.opt"] == OPTIMIZER
    assert found["Trainer:self.loader"] == LOADER
    assert found["__init__:net"] == MODEL  # the parameter aliased by self.net is the same object


def test_roles_flow_into_helper_parameters_and_out_of_returns():
    found = roles(
        """
        import torch
        from torch.utils.data import DataLoader
        def make_loaders():
            train = DataLoader(a)
            test = DataLoader(b)
            return train, test
        def train(net, batches, opt, dev):
            for x in batches:
                opt.step()
        def main():
            dev = torch.device("cuda")
            tl, vl = make_loaders()
            model = Net()
            optimizer = torch.optim.SGD(model.parameters())
            train(model, tl, optimizer, dev=dev)
        """
    )
    assert found["main:tl"] == LOADER and found["main:vl"] == LOADER
    assert found["train:batches"] == LOADER
    assert found["train:net"] == MODEL
    assert found["train:opt"] == OPTIMIZER
    assert found["train:dev"] == DEVICE


def test_module_subclass_called_in_a_batch_loop_is_a_model():
    found = roles(
        """
        import torch.nn as nn
        from torch.utils.data import DataLoader
        class Teacher(nn.Module):
            pass
        class Student(Teacher):
            pass
        teacher = Teacher()
        student = Student()
        criterion = nn.MSELoss()
        loader = DataLoader(ds)
        for x in loader:
            target = teacher(x)
            loss = criterion(student(x), target)
        """
    )
    assert found["<module>:teacher"] == MODEL
    assert found["<module>:student"] == MODEL
    assert "<module>:criterion" not in found  # a loss module is called in the loop, but is no model


def test_batch_names_moves_and_backward_calls():
    source = textwrap.dedent(
        """
        import torch
        from torch.utils.data import DataLoader
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        loader = DataLoader(ds)
        model = Net().to(device)
        opt = torch.optim.SGD(model.parameters())
        for step, batch in enumerate(loader):
            batch = {k: v.to(device) for k, v in batch.items()}
            inputs = batch["x"].to(device, non_blocking=True)
            noise = torch.randn(3).to(device)
            half = inputs.to(torch.float16)
            (model(inputs) + noise).sum().backward()
            opt.step()
        """
    )
    analysis = analyse(cst.parse_module(source))
    kinds = sorted((analysis.code(move.call), move.kind) for move in analysis.moves)
    assert kinds == [
        ("Net().to(device)", "model"),
        ('batch["x"].to(device, non_blocking=True)', "batch"),
        ("torch.randn(3).to(device)", "other"),
        ("v.to(device)", "batch"),
    ]
    assert [analysis.code(site.node.func.value) for site in analysis.backward_calls] == ["(model(inputs) + noise).sum()"]
    loop = next(iter(analysis.batch_loops))
    assert {"step", "batch", "inputs", "half"} <= analysis.batch_loops[loop]
    assert analysis.anchor is not None and analysis.code(analysis.anchor.targets[0]) == "opt"


def test_device_definitions_and_the_condition_that_picks_cuda():
    source = textwrap.dedent(
        """
        import torch
        use_cuda = not args.no_cuda and torch.cuda.is_available()
        if use_cuda:
            device = torch.device("cuda")
        else:
            device = torch.device("cpu")
        other = "cuda:0"
        """
    )
    analysis = analyse(cst.parse_module(source))
    definitions = {d.key: d for d in analysis.device_definitions}
    assert set(definitions) == {"device", "other"}
    assert analysis.code(definitions["device"].cuda_condition) == "use_cuda"
    assert definitions["other"].cuda_condition is None and not definitions["other"].cpu_literal
    assert [flag.name for flag in analysis.flags] == ["use_cuda"]


def test_helper_parameters_filled_with_batches_are_batches():
    source = textwrap.dedent(
        """
        import torch
        from torch.utils.data import DataLoader
        loader = DataLoader(ds)
        def step(x, scale):
            return x.to("cuda") * scale.to("cuda")
        def other(t):
            return t.to("cuda")
        losses = [step(x, torch.ones(1)) for x in loader]
        for x in loader:
            other(x)
        other(torch.zeros(1))
        """
    )
    analysis = analyse(cst.parse_module(source))
    kinds = {analysis.code(move.call): move.kind for move in analysis.moves}
    assert kinds == {'x.to("cuda")': "batch", 'scale.to("cuda")': "other", 't.to("cuda")': "other"}
