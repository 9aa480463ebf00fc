"""save_state/load_state files and errors, atomicity, and save_model's weight files (one process, in-process)."""

import json

import pytest
import torch
from safetensors import safe_open
from torch import nn

from accel import Accelerator, load_checkpoint_in_model


def _prepared(seed=0, register=()):
    accelerator = Accelerator(cpu=True)
    torch.manual_seed(seed)
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(*register)
    return accelerator, model, optimizer


def _step(accelerator, model, optimizer):
    accelerator.backward(model(torch.ones(3, 4)).square().mean())
    optimizer.step()
    optimizer.zero_grad()


class Exploding:
    """A registered object whose state cannot be taken: save_state fails half-way through."""

    def state_dict(self):
        raise RuntimeError("disk full")

    def load_state_dict(self, state):
        pass


def _snapshot(directory):
    return {p.name: p.read_bytes() for p in directory.iterdir()}


def test_load_state_restores_model_and_optimizer(tmp_path):
    accelerator, model, optimizer = _prepared()
    _step(accelerator, model, optimizer)
    accelerator.save_state(tmp_path / "ckpt")
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    momentum = optimizer.state_dict()["state"][0]["momentum_buffer"].clone()
    other, model2, optimizer2 = _prepared(seed=1)
    other.load_state(tmp_path / "ckpt")
    for name, tensor in model2.state_dict().items():
        assert torch.equal(tensor, saved[name])
    assert torch.equal(optimizer2.state_dict()["state"][0]["momentum_buffer"], momentum)


def test_failed_save_keeps_the_previous_checkpoint_and_leaves_no_partial_directory(tmp_path):
    accelerator, model, optimizer = _prepared()
    target = tmp_path / "ckpt"
    accelerator.save_state(target)
    before = _snapshot(target)
    _step(accelerator, model, optimizer)
    accelerator.register_for_checkpointing(Exploding())
    with pytest.raises(RuntimeError, match="disk full"):
        accelerator.save_state(target)
    assert _snapshot(target) == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # the temporary directory was removed


def test_save_state_replaces_an_earlier_checkpoint(tmp_path):
    accelerator, model, optimizer = _prepared()
    target = tmp_path / "ckpt"
    accelerator.save_state(target)
    _step(accelerator, model, optimizer)
    accelerator.save_state(target)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]
    other, model2, _ = _prepared(seed=1)
    other.load_state(target)
    assert torch.equal(model2.weight, model.weight)


def test_save_state_refuses_to_replace_a_directory_that_is_not_a_checkpoint(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    accelerator, _, _ = _prepared()
    with pytest.raises(FileExistsError, match=r"is not a checkpoint written by save_state"):
        accelerator.save_state(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_load_state_errors_name_the_path_and_what_was_expected(tmp_path):
    accelerator, _, _ = _prepared()
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'missing'} does not exist"):
        accelerator.load_state(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="accel_checkpoint.json is missing"):
        accelerator.load_state(tmp_path)
    accelerator.save_state(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "stray.bin").write_bytes(b"")
    with pytest.raises(ValueError, match=r"holds stray\.bin, not listed in its accel_checkpoint\.json; expected only"):
        accelerator.load_state(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "stray.bin").unlink()
    (tmp_path / "ckpt" / "optimizer.bin").unlink()
    with pytest.raises(FileNotFoundError, match=r"lacks optimizer\.bin"):
        accelerator.load_state(tmp_path / "ckpt")


def test_load_state_refuses_a_checkpoint_of_other_objects_or_process_count(tmp_path):
    accelerator, _, _ = _prepared()
    accelerator.save_state(tmp_path / "ckpt")
    two_models = Accelerator(cpu=True)
    two_models.prepare(nn.Linear(4, 2), nn.Linear(2, 1), torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1))
    with pytest.raises(ValueError, match=r"holds 1 models \(model\.safetensors\), but this Accelerator has 2"):
        two_models.load_state(tmp_path / "ckpt")
    manifest = tmp_path / "ckpt" / "accel_checkpoint.json"
    plan = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**plan, "num_processes": 2}))
    with pytest.raises(ValueError, match=r"written by 2 process\(es\), this run has 1"):
        accelerator.load_state(tmp_path / "ckpt")


def test_register_for_checkpointing_needs_state_dict_methods():
    accelerator = Accelerator(cpu=True)
    with pytest.raises(TypeError, match="a list has no state_dict and no load_state_dict method"):
        accelerator.register_for_checkpointing([1, 2])


class TiedLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 16)
        self.body = nn.Linear(16, 16)
        self.head = nn.Linear(16, 50, bias=False)
        self.head.weight = self.embed.weight


def _equal_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name


def test_save_model_writes_safetensors_with_tied_weights_stored_once(tmp_path):
    accelerator = Accelerator(cpu=True)
    torch.manual_seed(0)
    model = accelerator.prepare(TiedLM())
    accelerator.save_model(model, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]
    with safe_open(tmp_path / "model.safetensors", framework="pt") as handle:
        assert sorted(handle.keys()) == ["body.bias", "body.weight", "embed.weight"]
        assert json.loads(handle.metadata()["accel_aliases"]) == {"head.weight": "embed.weight"}
    torch.manual_seed(1)
    fresh = TiedLM()
    load_checkpoint_in_model(fresh, tmp_path, strict=True)
    _equal_weights(fresh, model)
    assert fresh.head.weight is fresh.embed.weight


def test_save_model_shards_beyond_max_shard_size_with_an_index(tmp_path):
    accelerator = Accelerator(cpu=True)
    model = accelerator.prepare(TiedLM())
    (tmp_path / "model.safetensors").write_bytes(b"stale single file of an earlier save")
    accelerator.save_model(model, tmp_path, max_shard_size="3KB")  # embed: 3.2 KB, body: 1.1 KB
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                     "model.safetensors.index.json"]
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert index["weight_map"] == {"embed.weight": "model-00001-of-00002.safetensors",
                                   "body.weight": "model-00002-of-00002.safetensors",
                                   "body.bias": "model-00002-of-00002.safetensors"}
    assert index["metadata"]["accel_aliases"] == {"head.weight": "embed.weight"}
    fresh = TiedLM()
    load_checkpoint_in_model(fresh, tmp_path / "model.safetensors.index.json", strict=True)
    _equal_weights(fresh, model)


def test_save_model_without_safetensors_writes_a_torch_file(tmp_path):
    accelerator = Accelerator(cpu=True)
    model = accelerator.prepare(TiedLM())
    accelerator.save_model(model, tmp_path, safe_serialization=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pytorch_model.bin"]
    fresh = TiedLM()
    load_checkpoint_in_model(fresh, tmp_path / "pytorch_model.bin", strict=True)
    _equal_weights(fresh, model)


def test_save_model_and_loading_errors(tmp_path):
    accelerator = Accelerator(cpu=True)
    model = accelerator.prepare(nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"max_shard_size='ten' is not a size; expected a positive int"):
        accelerator.save_model(model, tmp_path, max_shard_size="ten")
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="is a file; expected a directory"):
        accelerator.save_model(model, tmp_path / "file")
    with pytest.raises(FileNotFoundError, match="no model weights found; expected one of model.safetensors.index"):
        load_checkpoint_in_model(model, tmp_path)
    accelerator.save_model(nn.Linear(2, 2, bias=False), tmp_path / "nobias")
    with pytest.warns(UserWarning, match=r"missing keys \['bias'\]"):
        load_checkpoint_in_model(nn.Linear(2, 2), tmp_path / "nobias")


def test_load_state_restores_the_position_in_the_accumulation_window(tmp_path):
    accelerator = Accelerator(cpu=True, gradient_accumulation_steps=3)
    model = accelerator.prepare(nn.Linear(2, 1))
    with accelerator.accumulate(model):
        pass
    accelerator.save_state(tmp_path / "ckpt")
    resumed = Accelerator(cpu=True, gradient_accumulation_steps=3)
    resumed_model = resumed.prepare(nn.Linear(2, 1))
    resumed.load_state(tmp_path / "ckpt")
    syncs = []
    for _ in range(3):
        with resumed.accumulate(resumed_model):
            syncs.append(resumed.sync_gradients)
    assert syncs == [False, True, False]  # micro-batches 2, 3 (window closes), 4 of the saved run
