"""AC014 on a GradScaler's state in checkpoints: saved from and restored into ``accelerator.scaler``."""

from __future__ import annotations

from accel_convert.convert import convert_source
from accel_convert.model import Options

HEAD = '''\
import torch

model = torch.nn.Linear(2, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
scaler = torch.cuda.amp.GradScaler()
'''
LOOP = '''\
for x in torch.randn(4, 3, 2):
    optimizer.zero_grad()
    with torch.autocast("cuda"):
        loss = model(x).sum()
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
'''
SAVED_AND_LOADED = HEAD + '''\
scaler.load_state_dict(torch.load("scaler.pt"))
''' + LOOP + '''\
torch.save(scaler.state_dict(), "scaler.pt")
print(f"scale {scaler.state_dict()['scale']}")
'''
SAVED_AND_LOADED_AFTER = '''\
import torch
from accel import Accelerator

accelerator = Accelerator(mixed_precision="fp16")
model = torch.nn.Linear(2, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
model, optimizer = accelerator.prepare(model, optimizer)
if accelerator.scaler is not None:
    accelerator.scaler.load_state_dict(torch.load("scaler.pt"))
for x in torch.randn(4, 3, 2):
    optimizer.zero_grad()
    with accelerator.autocast():
        loss = model(x).sum()
    accelerator.backward(loss)
    optimizer.step()
accelerator.save(accelerator.scaler.state_dict() if accelerator.scaler is not None else {}, "scaler.pt")
accelerator.print(f"scale {(accelerator.scaler.state_dict() if accelerator.scaler is not None else {})['scale']}")
'''


def test_scaler_state_is_saved_from_and_loaded_into_the_accelerators_scaler():
    result = convert_source(SAVED_AND_LOADED)
    assert result.text == SAVED_AND_LOADED_AFTER
    assert [(c.line, c.message) for c in result.changes if "scaler state" in c.message] == [
        (6, "scaler state loaded into `accelerator.scaler` when it has one"),
        (14, "scaler state saved from `accelerator.scaler` ({} without fp16)"),
        (15, "scaler state saved from `accelerator.scaler` ({} without fp16)"),
    ]
    assert result.diagnostics == ()
    assert convert_source(result.text).text == result.text


def test_target_accelerate_uses_only_accelerates_names():
    text = convert_source(SAVED_AND_LOADED, Options(target="accelerate")).text
    assert text == SAVED_AND_LOADED_AFTER.replace("from accel import", "from accelerate import")


def test_a_load_whose_result_is_used_keeps_the_scripts_own_amp():
    source = HEAD + "missing = scaler.load_state_dict(torch.load('scaler.pt'))\n" + LOOP
    result = convert_source(source)
    assert "scaler = torch.cuda.amp.GradScaler()" in result.text and "accelerator.scaler" not in result.text
    assert [d.format("x.py") for d in result.diagnostics] == [
        "x.py:6:11: AC014 mixed precision left as is: the `GradScaler` is used beyond scale/step/update/unscale_ and its "
        "state in checkpoints (use `accelerator.scaler`)"
    ]


TRAINER = '''\
import torch


class Trainer:
    def __init__(self, model, loader):
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = model.to(self.device)
        self.loader = loader
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1)
        self.scaler = torch.cuda.amp.GradScaler()

    def train_epoch(self):
        for x in self.loader:
            self.optimizer.zero_grad()
            with torch.cuda.amp.autocast():
                loss = self.model(x.to(self.device)).sum()
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()

    def save(self, path):
        torch.save({"model": self.model.state_dict(), "scaler": self.scaler.state_dict()}, path)

    def load(self, path):
        self.scaler.load_state_dict(torch.load(path)["scaler"])


loader = torch.utils.data.DataLoader(torch.randn(8, 3), batch_size=4)
trainer = Trainer(torch.nn.Linear(3, 1), loader)
trainer.train_epoch()
'''


def test_scaler_kept_in_an_attribute_goes_to_the_accelerator_too():
    result = convert_source(TRAINER)
    assert result.diagnostics == ()
    assert "GradScaler" not in result.text and "self.scaler" not in result.text
    assert '        self.accelerator = Accelerator(mixed_precision="fp16")\n' in result.text
    assert (
        '"scaler": self.accelerator.scaler.state_dict() if self.accelerator.scaler is not None else {}}, path)\n'
        in result.text
    )
    assert (
        "        if self.accelerator.scaler is not None:\n"
        '            self.accelerator.scaler.load_state_dict(torch.load(path)["scaler"])\n'
    ) in result.text


def test_scaler_attribute_read_through_another_object_keeps_the_scripts_own_amp():
    result = convert_source(TRAINER + "print(trainer.scaler.get_scale())\n")
    assert "self.scaler = torch.cuda.amp.GradScaler()" in result.text and "accelerator.scaler" not in result.text
    assert [(d.code, d.line) for d in result.diagnostics] == [("AC014", 10)]


def test_state_loaded_before_the_accelerator_exists_keeps_the_scripts_own_amp():
    source = (
        "import torch\n\nscaler = torch.cuda.amp.GradScaler()\nscaler.load_state_dict(torch.load('scaler.pt'))\n"
        "model = torch.nn.Linear(2, 1)\noptimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n" + LOOP
    )
    result = convert_source(source)
    assert "scaler = torch.cuda.amp.GradScaler()" in result.text and "accelerator.scaler" not in result.text
    assert [d.format("x.py") for d in result.diagnostics] == [
        "x.py:4:1: AC014 mixed precision left as is: the `GradScaler`'s state is saved or loaded where the accelerator "
        "does not exist yet (use `accelerator.scaler` once it does)"
    ]
