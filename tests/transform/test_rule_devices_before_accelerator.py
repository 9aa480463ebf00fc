"""AC003 on devices fixed before the accelerator exists: a parameter's device default (the calls that leave it out
pass the accelerator's device), a move at import time, and a device a library chooses (diagnosed)."""

from __future__ import annotations

from accel_convert.convert import convert_source

HELPER = '''\
import torch
from torch.utils.data import DataLoader, TensorDataset


def fit(model, loader, optimizer, device="cuda:0"):
    bias = torch.zeros(1, device=device)
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x) + bias, y).backward()
        optimizer.step()


def main():
    loader = DataLoader(TensorDataset(torch.randn(8, 2), torch.randn(8, 1)), batch_size=4)
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    {call}


main()
'''


def _ac003(result):
    return [d for d in result.diagnostics if d.code == "AC003"]


def test_calls_leaving_out_a_device_default_pass_the_accelerators_device():
    result = convert_source(HELPER.format(call="fit(model, loader, optimizer)"))
    assert "fit(model, loader, optimizer, accelerator=accelerator, device=accelerator.device.type)" in result.text
    assert "x, y = x.to(device)" not in result.text  # the prepared loader places the batches
    assert "bias = torch.zeros(1, device=device)" in result.text
    assert not _ac003(result)
    assert convert_source(result.text).text == result.text


def test_a_call_that_passes_the_device_is_left_alone():
    result = convert_source(HELPER.format(call='fit(model, loader, optimizer, "cpu")'))
    assert 'fit(model, loader, optimizer, "cpu", accelerator=accelerator)' in result.text


def test_a_torch_device_default_gets_the_device_itself():
    source = HELPER.format(call="fit(model, loader, optimizer)").replace('device="cuda:0"', 'device=torch.device("cuda", 0)')
    assert "device=accelerator.device)" in convert_source(source).text


def test_a_call_through_keyword_arguments_is_diagnosed():
    result = convert_source(HELPER.format(call="options = {}\n    fit(model, loader, optimizer, **options)"))
    (diagnostic,) = _ac003(result)
    assert diagnostic.message.startswith('`device="cuda:0"` is fixed when `fit` is defined, before the accelerator exists')
    assert "through `*`/`**` arguments" in diagnostic.message


def test_a_function_passed_around_is_diagnosed_at_its_default():
    result = convert_source(HELPER.format(call="hooks = [fit]\n    fit(model, loader, optimizer)"))
    (diagnostic,) = _ac003(result)
    assert diagnostic.line == 5
    assert "passed around, not only called" in diagnostic.message


IMPORT_TIME = '''\
import torch
from torch.utils.data import DataLoader, TensorDataset

OFFSET = torch.ones(1).cuda()


def main():
    device = torch.device("cuda")
    loader = DataLoader(TensorDataset(torch.randn(8, 2), torch.randn(8, 1)), batch_size=4)
    model = torch.nn.Linear(2, 1).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x) + OFFSET, y).backward()
        optimizer.step()


main()
'''


def test_a_move_at_import_time_says_it_runs_before_the_accelerator():
    result = convert_source(IMPORT_TIME)
    (diagnostic,) = _ac003(result)
    assert diagnostic.line == 4
    assert "runs when the module is imported, before the accelerator exists (it is created in `main`)" in diagnostic.message


LIBRARY = '''\
import torch
from kit.hardware import pick_device, pick_dtype


def main():
    device = pick_device("auto")
    dtype = pick_dtype()
    model = torch.nn.Linear(2, 1).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for x in torch.randn(4, 3, 2).to(dtype):
        optimizer.zero_grad()
        model(x.to(device)).sum().backward()
        optimizer.step()


main()
'''


def test_a_library_device_is_diagnosed_at_its_definition_and_a_dtype_is_not():
    result = convert_source(LIBRARY)
    definitions = [d for d in _ac003(result) if "a library chooses this device" in d.message]
    assert [d.line for d in definitions] == [6]
    assert definitions[0].message.startswith('`device = pick_device("auto")` left as is')
    assert "use `device = accelerator.device`" in definitions[0].message
