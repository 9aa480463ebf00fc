"""AC012: a `torch.load` of the file a converted `torch.save` wrote gets `accelerator.wait_for_everyone()` before
it where every process runs it, nothing where only the main process loads, and a diagnostic where it cannot tell."""

from __future__ import annotations

from accel_convert.convert import convert_source

TEMPLATE = '''\
import argparse

import torch


def main():
    parser = argparse.ArgumentParser()
    args = parser.parse_args()
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    best = 1e9
    for epoch in range(args.epochs):
        for x in torch.randn(4, 3, 2):
            optimizer.zero_grad()
            loss = model(x).sum()
            loss.backward()
            optimizer.step()
        if loss.item() < best:
            best = loss.item()
            torch.save(model.state_dict(), args.path)
{load}


def other(path):
    return torch.load(path)
'''


def _convert(load: str):
    return convert_source(TEMPLATE.format(load=load))


def _waits(text: str) -> int:
    return text.count("accelerator.wait_for_everyone()")


def test_load_after_the_loop_waits_for_the_save():
    result = _convert("    model.load_state_dict(torch.load(args.path))")
    assert "    accelerator.wait_for_everyone()\n    accelerator.unwrap_model(model).load_state_dict(torch.load(args.path))" in result.text
    assert not [d for d in result.diagnostics if d.code == "AC012"]
    assert convert_source(result.text).text == result.text


def test_load_under_a_uniform_option_waits_inside_it():
    result = _convert("    if args.reload:\n        model.load_state_dict(torch.load(args.path))")
    assert "    if args.reload:\n        accelerator.wait_for_everyone()\n" in result.text


def test_a_wait_already_there_is_enough():
    result = _convert("    torch.distributed.barrier()\n    model.load_state_dict(torch.load(args.path))")
    assert _waits(result.text) == 1  # the barrier, converted by AC017


def test_main_process_load_needs_no_wait():
    result = _convert("    if args.rank == 0:\n        model.load_state_dict(torch.load(args.path))")
    assert _waits(result.text) == 0
    assert not [d for d in result.diagnostics if d.code == "AC012"]


def test_load_of_another_file_or_elsewhere_is_left_alone():
    result = _convert("    model.load_state_dict(torch.load(args.other))\n    other(args.path)")
    assert _waits(result.text) == 0


def test_load_under_a_metric_is_diagnosed_not_waited_for():
    result = _convert("        if best < 0.5:\n            model.load_state_dict(torch.load(args.path))")
    assert _waits(result.text) == 0
    (diagnostic,) = [d for d in result.diagnostics if d.code == "AC012"]
    assert diagnostic.line == 22
    assert "`torch.load(args.path)` reads the file `accelerator.save` writes" in diagnostic.message
    assert "`if best < 0.5:` may send the processes different ways" in diagnostic.message


def test_load_in_a_helper_called_after_the_save_waits_there():
    source = TEMPLATE.format(load="    check(model, args)") + '''

def check(model, args):
    model.load_state_dict(torch.load(args.path))
'''
    # the helper is a different scope: its load is not known to follow the save (only a call of the saving
    # function from the load's own scope is), so nothing is inserted
    assert _waits(convert_source(source).text) == 0


def test_a_whole_model_is_saved_unwrapped():
    # torch.save(model, path) pickles the module: under several processes the prepared model is a
    # DistributedDataParallel wrapper, which a plain torch.load cannot unpickle without a process group
    source = (
        "import torch\nfrom torch.utils.data import DataLoader\nmodel = torch.nn.Linear(2, 1)\n"
        "optimizer = torch.optim.SGD(model.parameters(), lr=0.1)\nloader = DataLoader(torch.randn(8, 2), batch_size=2)\n"
        "for x in loader:\n    optimizer.zero_grad()\n    model(x).sum().backward()\n    optimizer.step()\n"
        'torch.save(model, "model.pth")\ntorch.save(optimizer, "optimizer.pth")\n'
    )
    text = convert_source(source).text
    assert 'accelerator.save(accelerator.unwrap_model(model), "model.pth")\n' in text
    assert 'accelerator.save(optimizer, "optimizer.pth")\n' in text
