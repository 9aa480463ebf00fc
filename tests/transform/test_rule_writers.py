"""AC020 main-process-writers on small inputs: the exact output, the diagnostics where it declines, idempotence."""

from __future__ import annotations

from accel_convert.convert import convert_source
from accel_convert.model import Diagnostic
from tests.transform.cli_helpers import work

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
    accelerator = Accelerator(cpu=True)
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


def attach(handler):
    logging.getLogger().addHandler(handler)


def main():
    logging.basicConfig(filename="train.log")
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    handler = logging.FileHandler("debug.log")
    attach(handler)
    board = Board()
    for x in torch.randn(4, 3, 2):
        optimizer.zero_grad()
        loss = model(x).sum()
        loss.backward()
        optimizer.step()
        log(board, loss.item())


main()
'''
HANDLERS = '''\
import logging

import torch


def main():
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    logger = logging.getLogger("train")
    handler = logging.FileHandler("train.log")
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    logging.getLogger("eval").addHandler(logging.FileHandler("eval.log", mode="w"))
    for x in torch.randn(4, 3, 2):
        optimizer.zero_grad()
        loss = model(x).sum()
        loss.backward()
        optimizer.step()
        logger.info("loss %.4f", loss.item())

    logger.removeHandler(handler)
    handler.close()


main()
'''
HANDLERS_AFTER = '''\
import logging

import torch
from accel import Accelerator


def main():
    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer = accelerator.prepare(model, optimizer)
    logger = logging.getLogger("train")
    if accelerator.is_main_process:
        handler = logging.FileHandler("train.log")
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        logger.addHandler(handler)
        logging.getLogger("eval").addHandler(logging.FileHandler("eval.log", mode="w"))
    for x in torch.randn(4, 3, 2):
        optimizer.zero_grad()
        loss = model(x).sum()
        accelerator.backward(loss)
        optimizer.step()
        logger.info("loss %.4f", loss.item())

    if accelerator.is_main_process:
        logger.removeHandler(handler)
        handler.close()


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
    assert work(result) == []
    assert convert_source(result.text).text == result.text


def test_writers_passed_on_or_created_before_the_accelerator_get_diagnostics():
    result = convert_source(DECLINED)
    assert "is_main_process" not in result.text
    assert [d for d in result.diagnostics if d.code == "AC020"] == [
        Diagnostic(
            "AC020",
            16,
            5,
            "`logging.basicConfig(...)` runs on every process; configure logging under `if accelerator.is_main_process:`",
        ),
        Diagnostic("AC020", 19, 15, f"`logging.FileHandler(...)` {UNMOVED}"),
        Diagnostic("AC020", 21, 13, f"`Board(...)` {UNMOVED}"),
    ]


def test_file_handler_attached_to_a_logger_moves_with_its_uses():
    """The usual shape: create, set a formatter, attach; also one created inside the `addHandler(...)` call."""
    result = convert_source(HANDLERS)
    assert result.text == HANDLERS_AFTER
    assert [(c.line, c.message) for c in result.changes if c.code == "AC020"] == [
        (10, "`logging.FileHandler` created and used on the main process only"),
        (13, "`logging.FileHandler` created and used on the main process only"),
    ]
    assert work(result) == []
    assert convert_source(result.text).text == result.text


def test_file_handler_inside_basic_config_moves_with_it():
    source = (
        "import logging\n\nimport torch\n\nmodel = torch.nn.Linear(2, 1)\n"
        "optimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        'logging.basicConfig(handlers=[logging.FileHandler("train.log")])\n'
        "for x in torch.randn(4, 3, 2):\n    optimizer.zero_grad()\n    model(x).sum().backward()\n    optimizer.step()\n"
    )
    result = convert_source(source)
    guarded = 'if accelerator.is_main_process:\n    logging.basicConfig(handlers=[logging.FileHandler("train.log")])\n'
    assert guarded in result.text
    assert work(result) == []


IMAGES = """\
import torch
import torchvision.utils as vutils
from torchvision.utils import save_image

model = torch.nn.Linear(4, 4)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
loader = torch.utils.data.DataLoader(torch.randn(16, 4), batch_size=4)
for epoch in range(2):
    for x in loader:
        optimizer.zero_grad()
        out = model(x)
        out.sum().backward()
        optimizer.step()
    vutils.save_image(out.detach().view(-1, 1, 2, 2), f"out_{epoch}.png")
    saved = [save_image(x.view(-1, 1, 2, 2), "x.png")]
"""


def test_saved_images_are_written_by_the_main_process_only():
    result = convert_source(IMAGES)
    assert (
        "    if accelerator.is_main_process:\n"
        '        vutils.save_image(out.detach().view(-1, 1, 2, 2), f"out_{epoch}.png")\n'
    ) in result.text
    # inside another expression it cannot be guarded alone: named, left as is
    assert '    saved = [save_image(x.view(-1, 1, 2, 2), "x.png")]\n' in result.text
    assert [(d.code, d.line) for d in result.diagnostics if d.code == "AC020"] == [("AC020", 15)]
    assert convert_source(result.text).text == result.text
