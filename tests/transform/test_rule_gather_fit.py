"""AC010 fits the gather to the code after the forward pass: in place, into names only the metrics read, or not at all."""

from __future__ import annotations

import pytest

from accel_convert.convert import convert_source

HEAD = """\
import math

import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence
from torch.utils.data import DataLoader

loader = DataLoader(data)
model = torch.nn.Linear(4, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for x, y in loader:
    model(x).sum().backward()
    optimizer.step()
with torch.no_grad():
"""


def _evaluation(body: str) -> str:
    """The converted evaluation loop: everything after ``with torch.no_grad():``."""
    text = convert_source(HEAD + body).text
    return text[text.index("with torch.no_grad():\n") + len("with torch.no_grad():\n") :]


def _diagnostics(body: str) -> list[str]:
    return [d.format("x.py") for d in convert_source(HEAD + body).diagnostics]


def test_only_metric_code_reads_the_batch_so_the_gather_rebinds_the_same_names():
    body = (
        "    for x, y in loader:\n"
        "        out = model(x)\n"
        "        for j in range(out.size(0)):\n"
        "            predictions.append(out[j].argmax().item())\n"
        "        total = total + (out - y).abs().sum().item()\n"
    )
    assert _evaluation(body) == body.replace(
        "        out = model(x)\n", "        out = model(x)\n        out, y = accelerator.gather_for_metrics((out, y))\n"
    )
    assert _diagnostics(body) == []


def test_code_that_needs_this_process_batch_keeps_it_and_the_metric_reads_new_names():
    body = (
        "    for i, (x, y) in enumerate(loader):\n"
        "        out, code = model(x)\n"
        "        total += F.mse_loss(out, x, reduction=\"sum\").item() + code.abs().sum().item()\n"
        "        if i == 0:\n"
        "            grid = out.view(batch_size, 2, 2)[:2]\n"
    )
    assert _evaluation(body) == (
        "    for i, (x, y) in enumerate(loader):\n"
        "        out, code = model(x)\n"
        "        all_out, all_code, all_x = accelerator.gather_for_metrics((out, code, x))\n"
        "        total += F.mse_loss(all_out, all_x, reduction=\"sum\").item() + all_code.abs().sum().item()\n"
        "        if i == 0:\n"
        "            grid = out.view(batch_size, 2, 2)[:2]\n"
    )
    assert _diagnostics(body) == []


def test_an_inline_forward_pass_reads_the_new_name_when_other_code_reads_the_batch():
    body = (
        "    for x, y in loader:\n"
        "        hits += (model(x).argmax(1) == y).sum().item()\n"
        "        torch.save(x.view(batch_size, 4), path)\n"
    )
    assert _evaluation(body) == (
        "    for x, y in loader:\n"
        "        outputs = model(x)\n"
        "        all_outputs, all_y = accelerator.gather_for_metrics((outputs, y))\n"
        "        hits += (all_outputs.argmax(1) == all_y).sum().item()\n"
        "        accelerator.save(x.view(batch_size, 4), path)\n"
    )


def test_an_inline_forward_pass_that_feeds_no_metric_stays_inline():
    body = "    for x, y in loader:\n        keep(model(x).view(batch_size, 2))\n        total += y.sum().item()\n"
    assert _evaluation(body) == (
        "    for x, y in loader:\n"
        "        all_y = accelerator.gather_for_metrics(y)\n"
        "        keep(model(x).view(batch_size, 2))\n"
        "        total += all_y.sum().item()\n"
    )


def test_names_unpacked_from_the_batch_in_one_tuple_are_gathered_with_the_output():
    body = (
        "    for batch in loader:\n"
        "        inputs, target = batch[0], batch[1]\n"
        "        prediction = model(inputs)\n"
        "        total += ((prediction - target) ** 2).sum().item()\n"
    )
    assert "        prediction, target = accelerator.gather_for_metrics((prediction, target))\n" in _evaluation(body)


def test_converting_the_converted_loop_changes_nothing():
    body = "    for x, y in loader:\n        out = model(x)\n        total += (out - y).sum().item()\n        keep(x.view(8, 4))\n"
    once = convert_source(HEAD + body).text
    assert "all_out, all_y = accelerator.gather_for_metrics((out, y))" in once
    assert convert_source(once).text == once


DECLINED = [
    pytest.param(
        "    for x, lengths in loader:\n"
        "        scores = model(x)\n"
        "        packed = pack_padded_sequence(scores, lengths.tolist(), batch_first=True).data\n"
        "        hits += (packed.argmax(-1) == 1).sum().item()\n",
        "x.py:17:18: AC010 evaluation loop not gathered: `scores` goes through pack_padded_sequence() with this "
        "process's lengths: padded to the longest sequence of each process's batch, its shape differs between "
        "processes; pad it with accelerator.pad_across_processes before gathering, or gather per-sample results; "
        "its metrics cover one process's batches",
        id="packed_with_this_process_lengths",
    ),
    pytest.param(
        "    for x, y in loader:\n        out, order = model(x)\n        references.extend(y[order].tolist())\n",
        "x.py:17:27: AC010 evaluation loop not gathered: `order`, an output of the model, indexes `y`: positions within "
        "one process's batch do not address the batch gathered from every process; gather `y[order]` instead of `y` "
        "and `order`; its metrics cover one process's batches",
        id="indices_returned_by_the_model",
    ),
    pytest.param(
        "    for x, y in loader:\n"
        "        out = model(x)\n"
        "        mse = F.mse_loss(out, y)\n"
        "        psnr = 10 * math.log10(1 / mse.item())\n"
        "        psnr_sum += psnr\n",
        "x.py:19:9: AC010 evaluation loop not gathered: `psnr_sum` adds up a value computed from `mse`, a loss averaged "
        "over each batch: it depends on which samples share a batch, so it changes with the number of processes; "
        "compute it from a loss with reduction=\"sum\" (or per sample); its metrics cover one process's batches",
        id="nonlinear_function_of_a_batch_mean",
    ),
    pytest.param(
        "    for x, y in loader:\n"
        "        out = model(x)\n"
        "        loss = F.mse_loss(out, y, reduction=\"sum\")\n"
        "        total += loss.item()\n"
        "        progress.set_postfix(loss=loss.view(1).item())\n",
        "x.py:19:9: AC010 evaluation loop not gathered: `loss` feeds the metrics and is also used by other code after "
        "the forward pass, which would see every process's batch; compute the metrics from names of their own; its "
        "metrics cover one process's batches",
        id="metric_value_also_used_elsewhere",
    ),
    pytest.param(
        "    for x, y in loader:\n        out = model(x)\n        torch.save(out.view(batch_size, 2), path)\n",
        "x.py:17:9: AC010 evaluation loop not gathered: nothing after the forward pass adds up a metric (`total += "
        "...`, `.append(...)`, `.update(...)`) and this code uses this process's batch; gather what your metric needs "
        "with gather_for_metrics; its metrics cover one process's batches",
        id="no_metric_at_all",
    ),
    pytest.param(
        "    for x, y in loader:\n        keep(model(x).view(batch_size, 2))\n",
        "x.py:16:9: AC010 evaluation loop not gathered: nothing after the forward pass adds up a metric (`total += "
        "...`, `.append(...)`, `.update(...)`) and this code uses this process's batch; gather what your metric needs "
        "with gather_for_metrics; its metrics cover one process's batches",
        id="no_metric_with_an_inline_forward",
    ),
    pytest.param(
        "    for i, (x, y) in enumerate(loader):\n"
        "        out = model(x)\n"
        "        if i >= 0: total += (out - y).sum().item()\n"
        "        keep(out.view(batch_size, 2))\n",
        "x.py:17:20: AC010 evaluation loop not gathered: the metrics are computed on the line of a compound statement "
        "(`if ...: total += ...`) while other code needs this process's batch; put that metric statement on a line of "
        "its own; its metrics cover one process's batches",
        id="metric_on_the_line_of_an_if",
    ),
]


@pytest.mark.parametrize(("body", "diagnostic"), DECLINED)
def test_a_loop_whose_metrics_do_not_fit_a_gather_is_left_as_it_is(body, diagnostic):
    assert "gather_for_metrics" not in _evaluation(body)
    assert _diagnostics(body) == [diagnostic]


def test_a_mean_of_batch_means_behind_sum_and_item_is_still_reported():
    body = "    for x, y in loader:\n        out = model(x)\n        total += F.mse_loss(out, y).sum().item()\n"
    assert "out, y = accelerator.gather_for_metrics((out, y))" in _evaluation(body)
    assert [line.split(" AC010 ")[1].split(":")[0] for line in _diagnostics(body)] == ["`total` adds up per-batch mean losses"]
