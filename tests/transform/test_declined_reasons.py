"""A declined file with a backward, an optimizer, or a distributed setup says why, naming what it found (issue 9,
shapes 13 and 14); a file with only device moves gets a note; one with no training code gets nothing."""

from __future__ import annotations

from textwrap import dedent

import pytest

from accel_convert import convert_source

STEPPED_IN_A_LOOP = """\
import torch
from torch.utils.data import DataLoader
gen = torch.nn.Linear(2, 2)
disc = torch.nn.Linear(2, 1)
optimizers = [torch.optim.Adam(gen.parameters()), torch.optim.Adam(disc.parameters())]
for x in DataLoader(torch.randn(8, 2), batch_size=2):
    disc(gen(x)).mean().backward()
    for opt in optimizers:
        opt.step()
"""

STEPPED_OUT_OF_A_DICT = """\
import torch
from torch.utils.data import DataLoader
gen = torch.nn.Linear(2, 2)
disc = torch.nn.Linear(2, 1)
optimizers = {"G": torch.optim.Adam(gen.parameters()), "D": torch.optim.Adam(disc.parameters())}
for x in DataLoader(torch.randn(8, 2), batch_size=2):
    disc(gen(x)).mean().backward()
    optimizers["D"].step()
"""

OWN_OPTIMIZER = """\
import torch
from torch.utils.data import DataLoader

class MySGD(torch.optim.Optimizer):
    def __init__(self, params, lr):
        super().__init__(params, dict(lr=lr))

model = torch.nn.Linear(2, 1)
optimizer = MySGD(model.parameters(), lr=0.1)
for x in DataLoader(torch.randn(8, 2), batch_size=2):
    model(x).sum().backward()
    optimizer.step()
"""

OWN_DDP_AND_FACTORY = """\
import torch
import torch.distributed as dist
from engine import train_one_epoch

def main(args):
    dist.init_process_group("nccl")
    model = torch.nn.parallel.DistributedDataParallel(build_model(args).cuda())
    optimizer = make_optimizer(model)
    for epoch in range(args.epochs):
        train_one_epoch(model, optimizer)
"""

ENTRY_SCRIPT = """\
import torch
from trainer import fit
model = torch.nn.Linear(3, 1).to("cuda")
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
fit(model, optimizer)
"""

ONE_STEP = """\
import torch
model = torch.load("m.pt").to("cuda")
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
loss = model(torch.ones(3)).sum()
loss.backward()
optimizer.step()
"""


@pytest.mark.parametrize(
    ("source", "line", "words"),
    [
        (STEPPED_IN_A_LOOP, 7, "the optimizers are stepped through a loop over `optimizers` (`opt.step()`)"),
        (STEPPED_OUT_OF_A_DICT, 7, "the optimizers are held in `optimizers` and stepped as `optimizers[\"D\"].step()`"),
        (OWN_DDP_AND_FACTORY, 6, "`dist.init_process_group` sets up distributed training, but this file has no training step"),
        (ENTRY_SCRIPT, 4, "`torch.optim.AdamW(...)` creates an optimizer, but this file has no training step"),
        (ONE_STEP, 5, "`backward()` is called outside any loop"),
    ],
    ids=["for_opt_in_optimizers", "optimizers_dict", "own_ddp_and_factory", "entry_script", "backward_outside_loops"],
)
def test_a_declined_file_says_what_it_found(source, line, words):
    result = convert_source(source)
    assert result.text == source
    assert [(d.code, d.line, d.severity) for d in result.diagnostics] == [("AC001", line, "work")]
    assert words in result.diagnostics[0].message
    assert result.diagnostics[0].message.endswith("nothing converted")


def test_an_in_file_optimizer_subclass_is_known_by_its_use_and_prepared():
    source = OWN_OPTIMIZER.replace(
        "for x in DataLoader(torch.randn(8, 2), batch_size=2):", "loader = DataLoader(torch.randn(8, 2), batch_size=2)\nfor x in loader:"
    )
    result = convert_source(source)
    assert "model, optimizer, loader = accelerator.prepare(model, optimizer, loader)\n" in result.text
    assert "    accelerator.backward(model(x).sum())\n" in result.text
    assert result.diagnostics == ()


def test_no_training_code_gets_no_diagnostic():
    source = dedent(
        """\
        import torch
        x = torch.randn(3).to("cuda")
        print(x.sum())
        """
    )
    assert convert_source(source).diagnostics == ()


def test_a_backward_without_an_optimizer_is_said_once():
    source = dedent(
        """\
        import torch
        model = torch.nn.Linear(3, 1)
        model(torch.ones(3)).sum().backward()
        """
    )
    result = convert_source(source)
    assert result.text == source
    assert [(d.code, d.line) for d in result.diagnostics] == [("AC021", 3)]


HELPER_CLASS = """\
import torch

class Trainer:
    def __init__(self, model, optimizer, loader):
        self.model, self.optimizer, self.loader = model, optimizer, loader
        self.scaler = torch.cuda.amp.GradScaler()

    def train(self):
        for x in self.loader:
            loss = self.model(x).sum()
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
"""


def test_a_helper_class_given_its_optimizer_is_explained_once_by_ac021():
    # the scaler steps the optimizer (it is not taken for the optimizer), which comes from outside the class
    result = convert_source(HELPER_CLASS)
    assert result.text == HELPER_CLASS
    assert [(d.code, d.line) for d in result.diagnostics] == [("AC021", 11)]
    assert "`Trainer.train`, a helper class" in result.diagnostics[0].message


def test_a_helper_class_with_an_optimizer_made_by_its_model_is_converted():
    # the optimizer is known by its use (made by the model, stepped through the scaler after the backward); the
    # model comes into __init__, which prepares it; the loader from outside is named as not prepared
    text = HELPER_CLASS.replace(
        "self.model, self.optimizer, self.loader = model, optimizer, loader\n",
        "self.model, self.loader = model, loader\n        self.optimizer = model.configure_optimizers()\n",
    ).replace("def __init__(self, model, optimizer, loader):", "def __init__(self, model, loader):")
    result = convert_source(text)
    assert "self.model, self.optimizer = self.accelerator.prepare(self.model, self.optimizer)\n" in result.text
    assert "self.accelerator.backward(loss)\n" in result.text
    assert [(d.code, d.line) for d in result.diagnostics] == [("AC002", 10)]
    assert "the training loop iterates `self.loader`, which is not prepared" in result.diagnostics[0].message


RUN_METHOD = """\
import torch
from torch.utils.data import DataLoader

class Trainer:
    def __init__(self, model, dataset):
        self.model, self.dataset = model, dataset

    def run(self):
        model, dataset = self.model, self.dataset
        optimizer = torch.optim.AdamW(model.parameters())
        loader = DataLoader(dataset, batch_size=4)
        for x in loader:
            model(x).sum().backward()
            optimizer.step()
"""


def test_a_run_whose_model_comes_in_through_the_constructor_prepares_it_where_it_trains():
    # the optimizer and loader are made in run(), the model is handed to __init__ (minGPT's Trainer): run() prepares
    # its own name for it with them (a prepare without the model once let the replicas drift apart silently)
    result = convert_source(RUN_METHOD)
    assert "model, optimizer, loader = self.accelerator.prepare(model, optimizer, loader)" in result.text
    assert "self.accelerator.backward(model(x).sum())" in result.text
    assert not result.diagnostics


def test_a_run_whose_model_is_set_from_outside_is_declined_once():
    script = RUN_METHOD.replace(
        "    def __init__(self, model, dataset):\n        self.model, self.dataset = model, dataset\n",
        "    def __init__(self, dataset):\n        self.dataset = dataset\n        self.model = None\n",
    )
    result = convert_source(script)
    assert result.text == script
    assert [d.code for d in result.diagnostics] == ["AC002"]
    assert result.diagnostics[0].message.startswith("nothing converted: `accelerator.prepare` would get no model")