"""Rules AC010-AC019 where they decline: the construct stays as written and a diagnostic names the rule and why."""

from __future__ import annotations

import pytest

from accel_convert.convert import convert_source

HEAD = """\
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

loader = DataLoader(data)
model = torch.nn.Linear(4, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
"""
TRAIN = """\
for x, y in loader:
    model(x).sum().backward()
    optimizer.step()
"""

CASES = [
    pytest.param(
        TRAIN + "with torch.no_grad():\n    for x, y in loader:\n        n = y.size(0)\n        out = model(x)\n        total += n\n",
        "        out = model(x)\n        total += n\n",
        "x.py:14:9: AC010 evaluation loop not gathered: `n` is computed from this process's batch before the forward"
        " pass and used after it; its metrics cover one process's batches",
        id="gather_value_computed_before_forward",
    ),
    pytest.param(
        TRAIN + "with torch.no_grad():\n    for x, y in loader:\n        hits += (model(x).argmax(1) == model(y).argmax(1)).sum().item()\n",
        "        hits += (model(x).argmax(1) == model(y).argmax(1)).sum().item()\n",
        "x.py:13:18: AC010 evaluation loop not gathered: the model is called more than once, or inside a compound"
        " statement; its metrics cover one process's batches",
        id="gather_two_inline_forwards",
    ),
    pytest.param(
        TRAIN.replace("    optimizer.step()", "    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)\n    optimizer.step()"),
        "    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)\n",
        "x.py:10:5: AC013 gradient clipping left as is: `foreach=` is not an argument of `accelerator.clip_grad_norm_`",
        id="clip_unknown_keyword",
    ),
    pytest.param(
        "scaler = torch.cuda.amp.GradScaler()\nfor x in loader:\n    with torch.autocast(\"cuda\"):\n"
        "        loss = model(x).sum()\n    scaler.scale(loss).backward()\n    scaler.step(optimizer)\n"
        "    scaler.update()\nprint(scaler.get_scale())\n",
        "scaler = torch.cuda.amp.GradScaler()\n",
        "x.py:15:7: AC014 mixed precision left as is: the `GradScaler` is used beyond scale/step/update/unscale_ and"
        " its state in checkpoints (use `accelerator.scaler`)",
        id="scaler_used_elsewhere",
    ),
    pytest.param(
        "for i, x in enumerate(loader):\n    optimizer.zero_grad()\n    loss = model(x).sum() / 4\n    loss.backward()\n"
        "    if (i + 1) % 4 == 0:\n        optimizer.step()\n        optimizer.zero_grad()\n",
        "    loss = model(x).sum() / 4\n",
        "x.py:12:5: AC015 gradient accumulation left as is: `zero_grad()` runs before the `if` too and would wipe the"
        " accumulated gradients",
        id="accumulation_zero_grad_at_the_top",
    ),
    pytest.param(
        "for i, x in enumerate(loader):\n    loss = model(x).sum()\n    loss = loss / 4\n    loss.backward()\n"
        "    logged = loss.item()\n    if (i + 1) % 4 == 0:\n        optimizer.step()\n        optimizer.zero_grad()\n",
        "    loss = loss / 4\n",
        "x.py:13:5: AC015 gradient accumulation left as is: `loss` divided by `4` is read after `backward()` too",
        id="accumulation_divided_loss_read_again",
    ),
    pytest.param(
        TRAIN + "best = torch.zeros(1)\ndist.all_reduce(best, op=dist.ReduceOp.MIN)\n",
        "dist.all_reduce(best, op=dist.ReduceOp.MIN)\n",
        "x.py:12:1: AC016 `dist.all_reduce(best, op=dist.ReduceOp.MIN)` left as is: `accelerator.reduce` takes a tensor"
        " variable and sum, mean or max",
        id="reduce_min",
    ),
]


@pytest.mark.parametrize(("body", "kept", "diagnostic"), CASES)
def test_declined_construct_is_kept_with_a_diagnostic(body, kept, diagnostic):
    result = convert_source(HEAD + body)
    assert kept in result.text
    assert [d.format("x.py") for d in result.diagnostics] == [diagnostic]


def test_save_into_an_open_file_keeps_torch_save_but_unwraps_the_state_dict():
    body = TRAIN + 'with open("m.pt", "wb") as handle:\n    torch.save(model.state_dict(), handle)\n'
    result = convert_source(HEAD + body)
    assert "    torch.save(accelerator.unwrap_model(model).state_dict(), handle)\n" in result.text
    assert result.diagnostics == ()


def test_a_progress_bar_that_sets_disable_is_left_alone():
    body = "from tqdm import tqdm\n" + TRAIN.replace("in loader", "in tqdm(loader, disable=quiet)")
    result = convert_source(HEAD + body)
    assert "for x, y in tqdm(loader, disable=quiet):\n" in result.text
    assert not any(change.code == "AC018" for change in result.changes)


def test_hogwild_vetoes_every_rewrite():
    body = "import torch.multiprocessing as mp\nmodel.share_memory()\n" + TRAIN + "mp.Process(target=print).start()\n"
    result = convert_source(HEAD + body)
    assert result.text == HEAD + body and result.changes == ()
    assert [d.code for d in result.diagnostics] == ["AC019"]


def test_ignoring_hogwild_converts_the_file():
    from accel_convert.model import Options

    body = "import torch.multiprocessing as mp\nmodel.share_memory()\n" + TRAIN + "mp.Process(target=print).start()\n"
    result = convert_source(HEAD + body, Options(ignore=frozenset({"AC019"})))
    assert "accelerator.prepare(" in result.text


def test_amp_flag_of_a_helper_is_not_moved_where_it_does_not_exist():
    # The accelerator is created in the `__main__` block; `amp` is a parameter of the helper, unknown there.
    source = '''\
import torch
from torch.utils.data import DataLoader


def train(model, loader, amp=False):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in loader:
        with torch.autocast("cuda", enabled=amp):
            loss = model(x).sum()
        loss.backward()
        optimizer.step()


if __name__ == "__main__":
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train(torch.nn.Linear(4, 2).to(device), DataLoader(data), amp=True)
'''
    result = convert_source(source)
    assert "mixed_precision" not in result.text
    assert 'with torch.autocast("cuda", enabled=amp):' in result.text
    assert [d.format("x.py") for d in result.diagnostics if d.code == "AC014"] == [
        "x.py:8:14: AC014 mixed precision left as is: `enabled=amp` reads names not set where the accelerator is"
        " created (or set only after it), so it cannot become `Accelerator(mixed_precision=...)`"
    ]
