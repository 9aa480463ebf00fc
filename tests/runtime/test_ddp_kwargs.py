"""``DistributedDataParallelKwargs`` through ``Accelerator(kwargs_handlers=...)``: checked options, and two gloo
processes training a model with an unused branch (workers/unused_parameters.py, one launch for all)."""

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from accel import Accelerator, DDPCommunicationHookType, DistributedDataParallelKwargs
from tests.launching import launch

WORKER = Path(__file__).parent / "workers" / "unused_parameters.py"


def test_only_options_changed_from_their_default_reach_ddp():
    assert DistributedDataParallelKwargs().to_kwargs() == {}
    options = DistributedDataParallelKwargs(find_unused_parameters=True, bucket_cap_mb=50, broadcast_buffers=True,
                                            comm_hook="power_sgd", comm_state_option={"start_powerSGD_iter": 2})
    assert options.to_kwargs() == {"find_unused_parameters": True, "bucket_cap_mb": 50}  # hooks are registered apart
    assert options.comm_hook is DDPCommunicationHookType.POWER_SGD


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("find_unused_parameters", "yes", "expected True or False"), ("bucket_cap_mb", 0, "expected a number > 0"),
    ("dim", 1.5, "expected an integer"),
    ("comm_hook", "fp8", "allowed: 'no', 'fp16', 'bf16', 'power_sgd', 'batched_power_sgd'"),
])
def test_a_bad_option_is_named(field, value, expected):
    with pytest.raises(ValueError, match=re.escape(f"DistributedDataParallelKwargs.{field}={value!r} is not allowed; {expected}")):
        DistributedDataParallelKwargs(**{field: value})


def test_hook_settings_need_a_power_sgd_hook():
    with pytest.raises(ValueError, match="comm_wrapper and comm_state_option apply to comm_hook='power_sgd' or "
                                         "'batched_power_sgd'; got comm_hook='fp16'"):
        DistributedDataParallelKwargs(comm_hook="fp16", comm_wrapper="bf16")


def test_kwargs_handlers_are_checked():
    handler = DistributedDataParallelKwargs(static_graph=True)
    assert Accelerator(kwargs_handlers=[handler]).ddp_handler is handler
    with pytest.raises(ValueError, match="DistributedDataParallelKwargs given twice"):
        Accelerator(kwargs_handlers=[handler, DistributedDataParallelKwargs()])
    with pytest.raises(TypeError, match=r"\{'find_unused_parameters': True\} is not a kwargs handler; allowed: DistributedDataParallelKwargs"):
        Accelerator(kwargs_handlers=[{"find_unused_parameters": True}])


def test_one_process_ignores_the_ddp_options():
    model = nn.Linear(2, 1)
    accelerator = Accelerator(cpu=True, kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    assert accelerator.unwrap_model(accelerator.prepare(model)) is model


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("unused")
    proc = launch(WORKER, out, timeout=120)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return [torch.load(out / f"rank{r}.pt") for r in (0, 1)]


def _one_process_reference():
    """Plain PyTorch, one process: the same model trained on the rows both processes see in each step."""
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(16, 4, generator=g), torch.randn(16, 1, generator=g)
    torch.manual_seed(0)
    used, unused = nn.Linear(4, 1), nn.Linear(4, 1)
    optimizer = torch.optim.SGD([*used.parameters(), *unused.parameters()], lr=0.1)
    for rows in (slice(0, 8), slice(8, 16)):
        nn.functional.mse_loss(used(x[rows]), y[rows]).backward()
        optimizer.step()
        optimizer.zero_grad()
    return {f"{name}.{key}": value for name, layer in (("used", used), ("unused", unused))
            for key, value in layer.state_dict().items()}


def test_find_unused_parameters_reaches_ddp_and_trains_like_one_process(ranks):
    expected = _one_process_reference()
    for result in ranks:
        assert result["find_unused"] is True
        assert result["params"].keys() == expected.keys()
        for key, value in expected.items():
            torch.testing.assert_close(result["params"][key], value, rtol=0, atol=1e-6)


def test_an_fp16_communication_hook_is_installed_and_trains_within_fp16_rounding(ranks):
    expected = _one_process_reference()
    for result in ranks:
        assert result["fp16_hook"] == "fp16_compress_hook"
        for key, value in expected.items():
            torch.testing.assert_close(result["fp16_params"][key], value, rtol=0, atol=1e-3)
        torch.testing.assert_close(result["fp16_params"], ranks[0]["fp16_params"], rtol=0, atol=0)


def test_without_the_option_ddp_names_the_unused_parameters(ranks):
    for rank, result in enumerate(ranks):
        assert "find_unused_parameters=True" in result["error"]
        assert f"did not receive grad for rank {rank}: 2 3" in result["error"]  # unused.weight, unused.bias
