"""Shapes of nanoGPT-style LLM scripts: the launch test on RANK's sentinel default, the optimizer from
``model.configure_optimizers`` with ``raw_model = model.module if ddp else model``, and an evaluation that runs the
model on the main process only (it would hang a sharded model)."""

from __future__ import annotations

from accel_convert.convert import convert_source

HEADER = """\
import os

import torch
from torch.distributed import init_process_group
from torch.nn.parallel import DistributedDataParallel as DDP


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 1)

    def forward(self, x, y):
        return torch.nn.functional.mse_loss(self.fc(x), y)

    def configure_optimizers(self, lr):
        return torch.optim.AdamW(self.parameters(), lr=lr)


ddp = int(os.environ.get("RANK", -1)) {test} -1
if {flag}:
    init_process_group(backend="gloo")
    master_process = int(os.environ["RANK"]) == 0
else:
    master_process = True
model = Net()
optimizer = {receiver}.configure_optimizers(0.1)
if {flag}:
    model = DDP(model)
raw_model = model.module if {flag} else model


def get_batch():
    return torch.randn(8, 4), torch.randn(8, 1)


@torch.no_grad()
def estimate_loss():
    x, y = get_batch()
    return model(x, y).item()


for step in range(4):
"""

LOOP = """\
    x, y = get_batch()
    loss = model(x, y)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
"""


def _script(test="!=", receiver="model", evaluation="    if step % 2 == 0 and master_process:\n        print(estimate_loss())\n"):
    flag = "ddp" if test == "!=" else "not ddp"
    return HEADER.format(test=test, flag=flag, receiver=receiver) + evaluation + LOOP


def test_the_launch_test_on_ranks_sentinel_default_becomes_one_on_the_process_count():
    text = convert_source(_script()).text
    assert "ddp = accelerator.num_processes > 1\n" in text
    assert "os.environ" not in text
    text = convert_source(_script(test="==")).text
    assert "ddp = accelerator.num_processes == 1\n" in text


def test_the_model_behind_raw_model_is_prepared_not_the_unwrapped_view():
    # build-nanogpt's order: wrap, take the raw model, make the optimizer from it
    script = _script(evaluation="    print(step)\n").replace(
        "optimizer = model.configure_optimizers(0.1)\n", ""
    ).replace("raw_model = model.module if ddp else model\n", "raw_model = model.module if ddp else model\noptimizer = raw_model.configure_optimizers(0.1)\n")
    result = convert_source(script)
    assert "model, optimizer = accelerator.prepare(model, optimizer)" in result.text, result.text
    assert "raw_model = accelerator.unwrap_model(model) if ddp else model" in result.text
    assert "DDP(" not in result.text


def test_an_evaluation_on_the_main_process_only_is_reported():
    result = convert_source(_script())
    messages = [d.message for d in result.diagnostics if d.code == "AC017"]
    assert len(messages) == 1, result.diagnostics
    assert messages[0].startswith(
        "`estimate_loss()` runs `model` on the main process only (under `if step % 2 == 0 and master_process:`)"
    )
    assert "sharded model (FSDP, DeepSpeed ZeRO-3)" in messages[0]


def test_an_evaluation_on_every_process_is_not_reported():
    evaluation = "    if step % 2 == 0:\n        value = estimate_loss()\n        if master_process:\n            print(value)\n"
    result = convert_source(_script(evaluation=evaluation))
    assert result.changed
    assert not [d for d in result.diagnostics if d.code == "AC017"], result.diagnostics
