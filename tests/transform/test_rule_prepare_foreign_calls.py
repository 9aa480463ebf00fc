"""AC002 where a prepared model or loader goes into a function of the user's other modules: the exact diagnostic at
the call (that function gets the DistributedDataParallel wrapper and this process's share of the batches), and none
for libraries, the standard library, functions of the file or an unwrapped model."""

from __future__ import annotations

import pytest

from accel_convert.convert import convert_source
from accel_convert.model import Diagnostic

SCRIPT = """\
import torch
from torch.utils.data import DataLoader, TensorDataset

{imports}

data = TensorDataset(torch.randn(8, 4), torch.randn(8, 2))
train_loader = DataLoader(data, batch_size=2)
val_loader = DataLoader(data, batch_size=2)
model = torch.nn.Linear(4, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for x, y in train_loader:
    optimizer.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    optimizer.step()
print({call})
"""

MODEL = (
    "the prepared `model`, which under several processes is a DistributedDataParallel wrapper (the model's own "
    "attributes and methods need `accelerator.unwrap_model(model)`)"
)
LOADER = (
    "the prepared `val_loader`, which yields only this process's share of the batches (metrics computed from it must "
    "be gathered with `accelerator.gather_for_metrics`)"
)
UNWRAP = "pass `accelerator.unwrap_model(model)` where it needs the model itself, or "


def _script(imports: str, call: str) -> str:
    return SCRIPT.format(imports=imports, call=call)


def _ac002(text: str) -> list[Diagnostic]:
    result = convert_source(text)
    assert "model, optimizer, train_loader, val_loader = accelerator.prepare(" in result.text
    return [d for d in result.diagnostics if d.code == "AC002"]


def test_model_and_loader_passed_to_an_imported_function_get_one_diagnostic_at_the_call():
    text = _script("from evaluate import evaluate", "evaluate(model, val_loader)")
    assert _ac002(text) == [
        Diagnostic(
            "AC002",
            15,
            7,
            "`evaluate(...)` comes from the module `evaluate`, which accel-convert does not see: it receives "
            f"{MODEL} and {LOADER}; {UNWRAP}adapt `evaluate` to several processes too",
        )
    ]


def test_model_passed_by_keyword_through_a_module_attribute():
    text = _script("import metrics", "metrics.score(net=model)")
    assert _ac002(text) == [
        Diagnostic(
            "AC002",
            15,
            7,
            "`metrics.score(...)` comes from the module `metrics`, which accel-convert does not see: it receives "
            f"{MODEL}; {UNWRAP}adapt `metrics` to several processes too",
        )
    ]


def test_a_loader_alone_gets_the_gathering_advice_only():
    text = _script("from tools.eval import accuracy", "accuracy(val_loader)")
    assert _ac002(text) == [
        Diagnostic(
            "AC002",
            15,
            7,
            "`accuracy(...)` comes from the module `tools.eval`, which accel-convert does not see: it receives "
            f"{LOADER}; adapt `tools.eval` to several processes too",
        )
    ]


def test_a_relative_import_is_the_user_s_module():
    text = _script("from .evaluate import evaluate", "evaluate(model)")
    [diagnostic] = _ac002(text)
    assert diagnostic.message.startswith("`evaluate(...)` comes from the module `.evaluate`,")


def test_a_helper_of_the_file_that_passes_the_model_on_is_reported_inside_it():
    text = """\
import torch
from torch.utils.data import DataLoader, TensorDataset

from metrics import score


def validate(net, loader):
    net.eval()
    return score(loader, net=net)


def main():
    data = TensorDataset(torch.randn(8, 4), torch.randn(8, 2))
    loader = DataLoader(data, batch_size=2)
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(2):
        for x, y in loader:
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
        print(validate(model, loader))


main()
"""
    result = convert_source(text)
    assert "model, optimizer, loader = accelerator.prepare(model, optimizer, loader)" in result.text
    assert list(result.diagnostics) == [
        Diagnostic(
            "AC002",
            9,
            12,
            "`score(...)` comes from the module `metrics`, which accel-convert does not see: it receives the "
            "prepared `net`, which under several processes is a DistributedDataParallel wrapper (the model's own "
            "attributes and methods need `accelerator.unwrap_model(net)`) and the prepared `loader`, which yields only "
            "this process's share of the batches (metrics computed from it must be gathered with "
            "`accelerator.gather_for_metrics`); pass `accelerator.unwrap_model(net)` where it needs the model itself, "
            "or adapt `metrics` to several processes too (`validate` cannot reach the accelerator: pass it in)",
        )
    ]


@pytest.mark.parametrize(
    "imports, call",
    [
        ("import torchinfo", "torchinfo.summary(model)"),
        ("from torchinfo import summary", "summary(model)"),
        ("import copy", "copy.deepcopy(model)"),
        ("from copy import deepcopy", "deepcopy(model)"),
        ("import wandb", "wandb.watch(model)"),
        ("from evaluate import evaluate", "evaluate(accelerator.unwrap_model(model))"),
        ("from evaluate import evaluate", "evaluate(data)"),
        ("", "len(val_loader)"),
        ("def evaluate(net, loader):\n    return sum(net(x).sum() for x, _ in loader)", "evaluate(model, val_loader)"),
    ],
)
def test_no_diagnostic_for_libraries_builtins_functions_of_the_file_or_an_unwrapped_model(imports, call):
    assert _ac002(_script(imports, call)) == []


def test_a_call_before_the_prepare_statement_gets_the_plain_model():
    text = _script("from evaluate import evaluate", "0").replace(
        "optimizer = torch.optim", "evaluate(model)\noptimizer = torch.optim"
    )
    assert _ac002(text) == []


def test_a_local_name_shadowing_the_import_is_not_the_imported_function():
    text = _script("from evaluate import evaluate", "evaluate(model)").replace(
        "print(evaluate", "evaluate = print\nprint(evaluate"
    )
    assert _ac002(text) == []


def test_a_name_from_a_star_import_of_the_users_module_is_named_with_it():
    # `from utils import *` then `save_checkpoint(model, ...)`: it most likely comes from utils
    result = convert_source(SCRIPT.format(imports="from utils import *\nfrom torch.optim import *", call='save_checkpoint(model, "best.pt")'))
    [diagnostic] = result.diagnostics
    assert diagnostic.message.startswith("`save_checkpoint(...)` comes from the module `utils`, which accel-convert does not see")
    # builtins and names of the file are not
    for call in ("len(val_loader)", "sorted([model])"):
        assert convert_source(SCRIPT.format(imports="from utils import *", call=call)).diagnostics == ()
