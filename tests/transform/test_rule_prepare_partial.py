"""AC002 where it prepares only part of a training run: the exact diagnostics for a model partly given to the
optimizer and for a training loop over an iterable that is not prepared."""

from __future__ import annotations

from accel_convert.convert import convert_source
from accel_convert.model import Diagnostic
from tests.transform.cli_helpers import work

PARTLY = '''\
import torch


class Encoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = torch.nn.Linear(4, 8)
        self.head = torch.nn.Linear(8, 2)

    def forward(self, x):
        with torch.no_grad():
            h = self.backbone(x)
        return self.head(h)


encoder = Encoder()
decoder = torch.nn.Linear(2, 1)
params = list(decoder.parameters()) + list(encoder.head.parameters())
optimizer = torch.optim.SGD(params, lr=0.1)
for x in torch.randn(4, 5, 4):
    optimizer.zero_grad()
    decoder(encoder(x)).sum().backward()
    optimizer.step()
'''


def test_a_model_partly_given_to_the_optimizer_is_prepared_with_a_diagnostic():
    result = convert_source(PARTLY)
    assert "encoder, decoder, optimizer = accelerator.prepare(encoder, decoder, optimizer)\n" in result.text
    assert work(result) == [
        Diagnostic(
            "AC002",
            19,
            13,
            "`encoder` is prepared whole, but the optimizer gets only the parameters of `encoder.head`: under several "
            "processes DistributedDataParallel stops at the second step if the other parameters of `encoder` get no "
            "gradient (e.g. used under `torch.no_grad()`): freeze those with `requires_grad_(False)`, or create the "
            "accelerator with `kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)]`",
        )
    ]


def test_a_frozen_backbone_needs_no_diagnostic():
    text = PARTLY.replace("decoder = torch.nn.Linear(2, 1)\n", "decoder = torch.nn.Linear(2, 1)\nencoder.backbone.requires_grad_(False)\n")
    result = convert_source(text)
    assert "accelerator.prepare(encoder, decoder, optimizer)" in result.text
    assert work(result) == []


BATCHES = '''\
import torch
from tqdm import tqdm
from batches import make_batches

model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
batches = make_batches()
for epoch in range(2):
    bar = tqdm(batches)
    for step, x in enumerate(bar):
        optimizer.zero_grad()
        model(x).sum().backward()
        optimizer.step()
'''


def test_a_training_loop_over_an_unprepared_iterable_names_it_through_the_progress_bar():
    result = convert_source(BATCHES)
    assert "model, optimizer = accelerator.prepare(model, optimizer)\n" in result.text
    assert work(result) == [
        Diagnostic(
            "AC002",
            10,
            20,
            "the training loop iterates `batches`, which is not prepared (it comes from `make_batches(...)`, which is "
            "not defined in this file), so every process goes through all of it; if it is a DataLoader, pass "
            "`batches` through `accelerator.prepare` as well",
        )
    ]


def test_a_progress_bar_rebound_to_its_own_name_is_followed_once():
    text = BATCHES.replace("    bar = tqdm(batches)\n", "    batches = tqdm(batches)\n").replace("(bar)", "(batches)")
    assert [d.message.split(",")[0] for d in work(convert_source(text))] == [
        "the training loop iterates `batches`"
    ]


def test_a_loop_over_a_range_or_a_dataloader_gets_no_diagnostic():
    for loop in ("range(5)", "loader"):
        text = BATCHES.replace("batches = make_batches()\n", "loader = torch.utils.data.DataLoader(make_batches())\n")
        text = text.replace("    bar = tqdm(batches)\n", "").replace("enumerate(bar)", f"enumerate({loop})")
        result = convert_source(text)
        assert result.changed and work(result) == [], loop


SHARE = '''\
import torch
from torch.utils.data import DataLoader, TensorDataset

model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
loader = DataLoader(TensorDataset(torch.randn(32, 4), torch.randn(32, 1)), batch_size=8)
for epoch in range(2):
    total = 0.0
    for x, y in loader:
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y, reduction="sum")
        loss.backward()
        optimizer.step()
        total += loss.item()
    print(f"epoch {epoch} loss {total / len(loader.dataset):.6f}")
'''


def test_a_sum_over_the_share_divided_by_the_whole_dataset_is_named():
    result = convert_source(SHARE)
    assert [(d.code, d.line) for d in work(result)] == [("AC002", 15)]
    message = work(result)[0].message
    assert message.startswith("`total / len(loader.dataset)` divides `total`, summed over this process's share")
    assert 'accelerator.reduce(torch.tensor(total, device=accelerator.device), "sum").item()' in message


def test_a_mean_over_batches_or_an_unprepared_loader_is_not_named():
    # len(loader) counts this process's batches: the mean of its batch means is right
    assert work(convert_source(SHARE.replace("len(loader.dataset)", "len(loader)"))) == []
    # an evaluation-style sum without a backward in the loop is AC010's
    no_backward = SHARE.replace("        loss.backward()\n", "")
    assert not any("divides" in d.message for d in convert_source(no_backward).diagnostics)
