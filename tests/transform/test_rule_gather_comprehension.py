"""AC010 in comprehensions over a prepared loader: the per-batch values are gathered inside the comprehension, or
the comprehension is left as it is with a diagnostic that says why."""

from __future__ import annotations

from accel_convert.convert import convert_source
from tests.transform.cli_helpers import work

HEAD = """\
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

loader = DataLoader(data)
model = torch.nn.Linear(4, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for x, y in loader:
    model(x).sum().backward()
    optimizer.step()
with torch.no_grad():
"""


def _convert(body: str) -> tuple[str, list[str]]:
    """The converted evaluation (everything after ``with torch.no_grad():``) and the diagnostics."""
    result = convert_source(HEAD + body)
    text = result.text
    assert convert_source(text).text == text, "converting the result again changes it"
    evaluation = text[text.index("with torch.no_grad():\n") + len("with torch.no_grad():\n") :]
    return evaluation, [d.format("x.py") for d in work(result)]


def test_sum_of_hits_over_a_generator_gathers_predictions_and_targets_once_per_batch():
    body = "    hits = sum((model(x).argmax(1) == y).sum().item() for x, y in loader)\n"
    assert _convert(body) == (
        "    hits = sum((outputs == y).sum().item() for x, y in loader"
        " for outputs, y in [accelerator.gather_for_metrics((model(x).argmax(1), y))])\n",
        [],
    )


def test_lists_of_predictions_and_of_targets_are_each_gathered_where_they_stand():
    body = (
        "    preds = torch.cat([model(x).argmax(dim=1) for x, _ in loader])\n"
        "    labels = torch.cat([y for _, y in loader])\n"
    )
    assert _convert(body) == (
        "    preds = torch.cat([accelerator.gather_for_metrics(model(x).argmax(dim=1)) for x, _ in loader])\n"
        "    labels = torch.cat([accelerator.gather_for_metrics(y) for _, y in loader])\n",
        [],
    )


def test_a_comprehension_over_an_unprepared_iterable_is_untouched():
    body = "    outs = [model(x) for x in [torch.ones(2, 4)]]\n    n = sum(1 for _ in loader)\n"
    assert _convert(body) == (body, [])


def test_a_filtered_comprehension_is_left_with_the_reason():
    body = "    hits = sum((model(x).argmax(1) == y).sum().item() for x, y in loader if y.sum() > 0)\n"
    assert _convert(body) == (
        body,
        [
            "x.py:12:77: AC010 evaluation loop not gathered: the comprehension filters batches with `if`, so processes "
            "would gather a different number of times; gather the per-batch values with "
            "accelerator.gather_for_metrics before filtering them; its metrics cover one process's batches"
        ],
    )


def test_a_model_call_under_a_condition_or_next_to_the_batch_index_is_left_with_the_reason():
    body = "    p = [model(x) if keep else None for x, y in loader]\n    d = {i: model(x) for i, (x, y) in enumerate(loader)}\n"
    text, diagnostics = _convert(body)
    assert text == body
    assert diagnostics == [
        "x.py:12:10: AC010 evaluation loop not gathered: the comprehension calls the model under a condition "
        "(`if`/`and`/`or`/lambda/inner comprehension), so a gather there could run a different number of times on "
        "each process; gather in a `for` loop; its metrics cover one process's batches",
        "x.py:13:9: AC010 evaluation loop not gathered: the comprehension reads `i`, the index of this process's "
        "batch; gather what the metric needs in a `for` loop; its metrics cover one process's batches",
    ]


def test_per_batch_mean_losses_are_gathered_and_reported():
    body = "    losses = [F.cross_entropy(model(x), y).item() for x, y in loader]\n"
    assert _convert(body) == (
        "    losses = [F.cross_entropy(outputs, y).item() for x, y in loader"
        " for outputs, y in [accelerator.gather_for_metrics((model(x), y))]]\n",
        [
            "x.py:12:14: AC010 the comprehension collects per-batch mean losses: a gathered batch holds one batch of "
            "every process, so a sum or mean of them changes with the number of processes; weight each batch by its "
            "size (or use reduction=\"sum\") and divide by the number of samples"
        ],
    )


def test_a_comprehension_with_gradients_over_the_training_loader_is_not_an_evaluation():
    source = HEAD.replace("with torch.no_grad():\n", "") + "train_hits = sum((model(x).argmax(1) == y).sum().item() for x, y in loader)\n"
    text = convert_source(source).text
    assert text.endswith("train_hits = sum((model(x).argmax(1) == y).sum().item() for x, y in loader)\n")


def test_a_sum_of_losses_that_backward_then_trains_on_is_not_an_evaluation():
    source = (
        "import torch\nfrom torch.utils.data import DataLoader\n\nloader = DataLoader(data)\n"
        "model = torch.nn.Linear(4, 2)\noptimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for epoch in range(3):\n"
        "    loss = sum(torch.nn.functional.mse_loss(model(x), y) for x, y in loader)\n"
        "    loss.backward()\n"
        "    optimizer.step()\n"
    )
    result = convert_source(source)
    assert "    loss = sum(torch.nn.functional.mse_loss(model(x), y) for x, y in loader)\n" in result.text
    assert "gather" not in result.text


def test_targets_collected_in_the_statement_of_the_predictions_are_gathered_too():
    body = "    acc = (torch.cat([model(x).argmax(1) for x, _ in loader]) == torch.cat([y for _, y in loader])).float().mean()\n"
    assert _convert(body) == (
        "    acc = (torch.cat([accelerator.gather_for_metrics(model(x).argmax(1)) for x, _ in loader])"
        " == torch.cat([accelerator.gather_for_metrics(y) for _, y in loader])).float().mean()\n",
        [],
    )


def test_a_comprehension_with_two_for_clauses_is_left_with_the_reason():
    body = "    outs = [model(x)[k] for x, y in loader for k in range(2)]\n"
    assert _convert(body) == (
        body,
        [
            "x.py:12:12: AC010 evaluation loop not gathered: the comprehension has more than one `for` clause; write "
            "it as a `for` loop; its metrics cover one process's batches"
        ],
    )
