"""AC020 main-process-writers on small inputs: the exact output, the diagnostics where it declines, idempotence."""

from __future__ import annotations

from accel_convert.convert import convert_source
from accel_convert.model import Diagnostic

GUARDED = '''\
import logging

import torch
from torch.utils import tensorboard


def main():
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    logging.basicConfig(level=logging.INFO)
    writer = tensorboard.SummaryWriter("runs/demo")
    writer.add_text("config", "lr=0.1")
    for step, x in enumerate(torch.randn(4, 3, 2)):
        optimizer.zero_grad()
        loss = model(x).sum()
        loss.backward()
        optimizer.step()
        writer.add_scalar("loss", loss.item(), step)

    writer.close()


main()
'''
GUARDED_AFTER = '''\
import logging

import torch
from torch.utils import tensorboard
from accel import Accelerator


def main():
    accelerator = Accelerator()
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer = accelerator.prepare(model, optimizer)
    if accelerator.is_main_process:
        logging.basicConfig(level=logging.INFO)
        writer = tensorboard.SummaryWriter("runs/demo")
        writer.add_text("config", "lr=0.1")
    for step, x in enumerate(torch.randn(4, 3, 2)):
        optimizer.zero_grad()
        loss = model(x).sum()
        accelerator.backward(loss)
        optimizer.step()
        if accelerator.is_main_process:
            writer.add_scalar("loss", loss.item(), step)

    if accelerator.is_main_process:
        writer.close()


main()
'''

DECLINED = '''\
import logging

import torch
from tensorboardX import SummaryWriter as Board


def log(board, value):
    board.add_scalar("loss", value)


def main():
    logging.basicConfig(filename="train.log")
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    handler = logging.FileHandler("debug.log")
    logging.getLogger().addHandler(handler)
    board = Board()
    for x in torch.randn(4, 3, 2):
        optimizer.zero_grad()
        loss = model(x).sum()
        loss.backward()
        optimizer.step()
        log(board, loss.item())


main()
'''
UNMOVED = (
    "is created on every process and could not be moved to the main process; "
    "create and use it under `if accelerator.is_main_process:`"
)


def test_writer_and_logging_move_under_the_main_process_guard():
    result = convert_source(GUARDED)
    assert result.text == GUARDED_AFTER
    assert [(c.line, c.message) for c in result.changes if c.code == "AC020"] == [
        (10, "`logging.basicConfig` on the main process only"),
        (11, "`tensorboard.SummaryWriter` created and used on the main process only"),
    ]
    assert result.diagnostics == ()
    assert convert_source(result.text).text == result.text


def test_writers_passed_on_or_created_before_the_accelerator_get_diagnostics():
    result = convert_source(DECLINED)
    assert "is_main_process" not in result.text
    assert [d for d in result.diagnostics if d.code == "AC020"] == [
        Diagnostic(
            "AC020",
            12,
            5,
            "`logging.basicConfig(...)` runs on every process; configure logging under `if accelerator.is_main_process:`",
        ),
        Diagnostic("AC020", 15, 15, f"`logging.FileHandler(...)` {UNMOVED}"),
        Diagnostic("AC020", 17, 13, f"`Board(...)` {UNMOVED}"),
    ]
