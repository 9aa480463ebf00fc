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
