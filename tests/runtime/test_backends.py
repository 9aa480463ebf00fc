"""Backend selection and the Backend interface."""

import os

import pytest
import torch

from accel import Accelerator, backends
from accel.backends.base import Backend
from accel.backends.single import SingleDeviceBackend
from accel.precision import Precision
from accel.state import DistributedType, ProcessState


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("ACCEL_USE") or name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
            monkeypatch.delenv(name)


class FakeState:
    def __init__(self, num_processes):
        self.num_processes = num_processes


def test_selection_by_process_count_plugins_and_environment(monkeypatch):
    assert backends.select_backend(FakeState(1)) == "single"
    assert backends.select_backend(FakeState(2)) == "ddp"
    assert backends.select_backend(FakeState(1), fsdp_plugin=object()) == "fsdp"
    assert backends.select_backend(FakeState(4), deepspeed_plugin=object()) == "deepspeed"
    monkeypatch.setenv("ACCEL_USE_FSDP", "true")
    assert backends.select_backend(FakeState(2)) == "fsdp"
    monkeypatch.setenv("ACCEL_USE_DEEPSPEED", "1")
    with pytest.raises(ValueError, match="FSDP and DeepSpeed cannot be used together"):
        backends.select_backend(FakeState(2))


def test_a_registered_backend_whose_module_is_missing_is_named(monkeypatch):
    monkeypatch.setitem(backends.BACKENDS, "fsdp", ("no_such_backend_module", "FSDPBackend"))
    with pytest.raises(NotImplementedError) as err:
        backends.load_backend_class("fsdp")
    assert "'fsdp' backend (accel/backends/no_such_backend_module.py) is not available" in str(err.value)
    with pytest.raises(NotImplementedError, match="'fsdp' backend"):
        Accelerator(cpu=True, fsdp_plugin=object())


def test_unknown_backend_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown backend 'tpu'; allowed: single, ddp, fsdp, deepspeed"):
        backends.load_backend_class("tpu")


def test_single_device_backend_defaults():
    state = ProcessState(cpu=True)
    backend = backends.create_backend(state, Precision("no", state.device))
    assert isinstance(backend, SingleDeviceBackend) and backend.distributed_type is DistributedType.NO
    t = torch.arange(3.0)
    assert backend.all_gather(t) is t and backend.all_gather_object("x") == ["x"]
    assert backend.broadcast_object({"a": 1}) == {"a": 1}
    assert torch.equal(backend.all_reduce(t, "max"), t)
    model = torch.nn.Linear(2, 2)
    assert backend.prepare_models_and_optimizers([model], []) == ([model], [])
    assert set(backend.model_state_dict(model)) == {"weight", "bias"}
    backend.teardown()


def test_the_interface_requires_model_preparation_no_sync_and_unwrap():
    assert Backend.__abstractmethods__ == {"prepare_model", "no_sync", "unwrap_model"}
