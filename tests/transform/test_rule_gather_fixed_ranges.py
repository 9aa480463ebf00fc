"""AC010 after the gather: loops over a fixed number of samples get the gathered length, and sums of batch-mean
losses get a diagnostic also when the model is called inline."""

from __future__ import annotations

import pytest

from accel_convert.convert import convert_source

HEAD = """\
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

batch_size = 4
loader = DataLoader(data, batch_size=batch_size)
test_loader = DataLoader(test_data, batch_size=4)
model = torch.nn.Linear(4, 2)
l1 = nn.L1Loss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for x, y in loader:
    model(x).sum().backward()
    optimizer.step()
with torch.no_grad():
"""
GATHER = "        out, y = accelerator.gather_for_metrics((out, y))\n"


def _convert(body: str):
    return convert_source(HEAD + body)


def _evaluation(body: str) -> str:
    text = _convert(body).text
    return text[text.index("with torch.no_grad():\n") + len("with torch.no_grad():\n") :]


def _diagnostics(body: str) -> list[str]:
    return [d.message for d in _convert(body).diagnostics if d.code == "AC010"]


def _per_class(bound: str, loader: str = "test_loader") -> str:
    return (
        f"    for x, y in {loader}:\n"
        "        out = model(x)\n"
        "        c = (out.argmax(1) == y).squeeze()\n"
        f"        for i in {bound}:\n"
        "            label = y[i]\n"
        "            class_correct[label] += c[i].item()\n"
    )


@pytest.mark.parametrize(
    ("bound", "expected"),
    [
        ("range(batch_size)", "range(len(y))"),  # a name that says it is the batch size
        ("range(4)", "range(len(y))"),  # the literal given to the loader's batch_size=
        ("range(0, batch_size)", "range(0, len(y))"),
        ("range(args.test_batch_size)", "range(len(y))"),
    ],
    ids=["name", "loader-literal", "zero-start", "attribute"],
)
def test_a_bound_fixed_to_the_batch_size_becomes_the_gathered_length(bound, expected):
    body = _per_class(bound)
    converted = body.replace("        out = model(x)\n", "        out = model(x)\n" + GATHER).replace(bound, expected)
    assert _evaluation(body) == converted
    assert _diagnostics(body) == []


def test_the_change_is_reported():
    changes = [c.message for c in _convert(_per_class("range(batch_size)")).changes if c.code == "AC010"]
    assert any(m.startswith("`batch_size` -> `len(y)`: a gathered batch holds the samples of every process") for m in changes)


def test_a_literal_that_is_not_the_loaders_batch_size_is_left_alone():
    body = _per_class("range(3)")  # test_loader's batch_size is 4
    assert "for i in range(3):" in _evaluation(body)


def test_a_loop_over_the_classes_is_left_alone():
    body = (
        "    for x, y in test_loader:\n"
        "        out = model(x)\n"
        "        pred = out.argmax(1)\n"
        "        for k in range(num_classes):\n"
        "            hits[k] += ((pred == k) & (y == k)).sum().item()\n"
    )
    assert "for k in range(num_classes):" in _evaluation(body)


def test_a_fixed_loop_that_indexes_nothing_of_the_batch_is_left_alone():
    body = (
        "    for x, y in test_loader:\n"
        "        out = model(x)\n"
        "        for i in range(batch_size):\n"
        "            slots[i] += (out.argmax(1) == y).sum().item()\n"
    )
    assert "for i in range(batch_size):" in _evaluation(body)


def test_the_length_is_that_of_the_name_the_gather_binds():
    body = (
        "    for j, (x, y) in enumerate(test_loader):\n"
        "        out = model(x)\n"
        "        for i in range(batch_size):\n"
        "            class_correct[y[i]] += (out[i].argmax() == y[i]).item()\n"
        "        if j == 0:\n"
        "            first = out.view(batch_size, 2)\n"
    )
    converted = _evaluation(body)
    assert "all_out, all_y = accelerator.gather_for_metrics((out, y))" in converted
    assert "for i in range(len(all_out)):" in converted
    assert "first = out.view(batch_size, 2)" in converted


@pytest.mark.parametrize("bound", ["range(1, batch_size)", "range(0, batch_size, 2)"])
def test_a_bound_that_cannot_be_rewritten_leaves_the_loop_with_a_diagnostic(bound):
    body = _per_class(bound)
    assert _evaluation(body) == body
    (message,) = _diagnostics(body)
    assert message.startswith(f"evaluation loop not gathered: `for i in {bound}` walks a fixed number of samples")
    assert "iterate `range(len(y))` instead" in message


@pytest.mark.parametrize(
    "line",
    [
        "        total += F.mse_loss(model(x), y).item()\n",
        "        total = total + F.mse_loss(model(x), y).item()\n",
        "        total += l1(model(x), y).item()\n",
    ],
    ids=["functional-inline", "assign-form", "module-loss-inline"],
)
def test_an_inline_batch_mean_loss_sum_gets_the_diagnostic(line):
    body = "    for x, y in test_loader:\n" + line
    (message,) = _diagnostics(body)
    assert message.startswith("`total` adds up per-batch mean losses")
    assert "accelerator.gather_for_metrics((outputs, y))" in _evaluation(body)


def test_the_assign_form_after_a_forward_statement_gets_the_diagnostic():
    body = "    for x, y in test_loader:\n        out = model(x)\n        total = total + F.mse_loss(out, y).item()\n"
    (message,) = _diagnostics(body)
    assert message.startswith("`total` adds up per-batch mean losses")


@pytest.mark.parametrize(
    "line",
    [
        "        total += F.mse_loss(model(x), y).item() * y.size(0)\n",
        "        total += F.mse_loss(model(x), y, reduction=\"sum\").item()\n",
    ],
    ids=["weighted", "reduction-sum"],
)
def test_a_per_sample_sum_inline_gets_no_diagnostic(line):
    assert _diagnostics("    for x, y in test_loader:\n" + line) == []
