"""AC017 carries the options of a removed `DistributedDataParallel` over to
`Accelerator(kwargs_handlers=[DistributedDataParallelKwargs(...)])`, and says which it could not carry."""

from __future__ import annotations

from accel_convert.convert import convert_source
from accel_convert.model import Options

SCRIPT = '''\
import os

import torch
from torch.nn.parallel import DistributedDataParallel as DDP


def main(find_unused, group):
    local_rank = int(os.environ["LOCAL_RANK"])
    model = torch.nn.Linear(2, 1)
    head = torch.nn.Linear(1, 1)
    model = DDP(model, device_ids=[local_rank], output_device=local_rank, {model_options})
    head = DDP(head, {head_options})
    optimizer = torch.optim.SGD([*model.parameters(), *head.parameters()], lr=0.1)
    for x in torch.randn(4, 3, 2):
        optimizer.zero_grad()
        head(model(x)).sum().backward()
        optimizer.step()
'''


def convert(model_options, head_options="static_graph=True", target="accel"):
    source = SCRIPT.format(model_options=model_options, head_options=head_options)
    result = convert_source(source, Options(target=target))
    messages = [f"{d.line}: {d.code} {d.message}" for d in result.diagnostics]
    return result.text, messages


def test_options_become_a_kwargs_handler_and_placement_goes():
    text, messages = convert("find_unused_parameters=True, bucket_cap_mb=50")
    assert "from accel import Accelerator, DistributedDataParallelKwargs\n" in text
    handler = "DistributedDataParallelKwargs(find_unused_parameters=True, bucket_cap_mb=50, static_graph=True)"
    assert f"    accelerator = Accelerator(kwargs_handlers=[{handler}])\n" in text
    assert "DDP" not in text and "device_ids" not in text
    assert messages == []
    assert convert_source(text, Options()).text == text  # idempotent


def test_target_accelerate_imports_the_handler_from_accelerate():
    text, _ = convert("find_unused_parameters=True", target="accelerate")
    assert "from accelerate import Accelerator, DistributedDataParallelKwargs\n" in text
    assert "from accel import" not in text


def test_a_wrapper_without_options_adds_no_handler():
    text, messages = convert("", head_options="")
    assert "from accel import Accelerator\n" in text
    assert "accelerator = Accelerator()" in text and "kwargs_handlers" not in text
    assert messages == []


def test_what_cannot_be_carried_is_named():
    text, messages = convert("find_unused_parameters=find_unused, process_group=group",
                             head_options="static_graph=False, **extra")
    assert "kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=find_unused, static_graph=False)]" in text
    assert messages == [
        "11: AC017 `process_group=group` of the removed `DistributedDataParallel` dropped: "
        "`DistributedDataParallelKwargs` has no such option (the accelerator's own process group is used)",
        "12: AC017 `**extra` of the removed `DistributedDataParallel` not carried over: it cannot be read where the "
        "accelerator is created; pass `DistributedDataParallelKwargs(...)` to `Accelerator(kwargs_handlers=[...])` by hand",
    ]


def test_an_option_two_wrappers_set_differently_keeps_the_first_value():
    text, messages = convert("static_graph=False", head_options="static_graph=True")
    assert "kwargs_handlers=[DistributedDataParallelKwargs(static_graph=False)]" in text
    assert messages == [
        "12: AC017 `static_graph=True` of the removed `DistributedDataParallel` not carried over: another "
        "`DistributedDataParallel` of the file sets it differently, and the accelerator gives every model the same options"
    ]


def test_a_value_set_after_the_accelerator_is_not_carried():
    source = SCRIPT.format(model_options="", head_options="static_graph=True").replace(
        "    head = DDP(head, static_graph=True)\n", "    static = True\n    head = DDP(head, static_graph=static)\n")
    result = convert_source(source, Options())
    assert "kwargs_handlers" not in result.text and "static_graph" not in result.text
    assert [d.message for d in result.diagnostics] == [
        "`static_graph=static` of the removed `DistributedDataParallel` not carried over: it cannot be read where the "
        "accelerator is created; pass `DistributedDataParallelKwargs(...)` to `Accelerator(kwargs_handlers=[...])` by hand"
    ]
