"""One process on CPU: the Accelerator's public API, its arguments and the one-process equivalence contract."""

import os
import pickle
import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

import accel
from accel import Accelerator, DistributedType, set_seed
from accel.data import PreparedDataLoader
from accel.optimizer import AcceleratedOptimizer
from accel.scheduler import AcceleratedScheduler


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("ACCEL_") or name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE"):
            monkeypatch.delenv(name)


class NoisyDataset(Dataset):
    """Random augmentation drawn from torch's global RNG in __getitem__, like a real transform."""

    def __init__(self, n=24):
        g = torch.Generator().manual_seed(3)
        self.x, self.y = torch.randn(n, 6, generator=g), torch.randn(n, 1, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i] + 0.1 * torch.randn(6), self.y[i]


def _train(use_accelerator, epochs=2):
    torch.manual_seed(1234)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Dropout(0.3), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.7)
    loader = DataLoader(NoisyDataset(), batch_size=5, shuffle=True)
    if use_accelerator:
        accelerator = Accelerator(cpu=True)
        model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    losses = []
    for _ in range(epochs):
        for x, y in loader:
            loss = torch.nn.functional.mse_loss(model(x), y)
            if use_accelerator:
                accelerator.backward(loss)
            else:
                loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            losses.append(loss.item())
    return losses, [p.detach().clone() for p in model.parameters()]


def test_one_process_run_is_bit_identical_to_the_plain_loop():
    raw_losses, raw_params = _train(use_accelerator=False)
    losses, params = _train(use_accelerator=True)
    assert losses == raw_losses
    for got, want in zip(params, raw_params):
        assert torch.equal(got, want)


def test_state_of_a_single_process():
    accelerator = Accelerator(cpu=True)
    assert accelerator.device == torch.device("cpu")
    assert (accelerator.process_index, accelerator.local_process_index, accelerator.num_processes) == (0, 0, 1)
    assert accelerator.is_main_process and accelerator.is_local_main_process and accelerator.is_last_process
    assert not accelerator.use_distributed
    assert accelerator.distributed_type is DistributedType.NO
    assert accelerator.mixed_precision == "no" and accelerator.scaler is None
    assert accelerator.gradient_accumulation_steps == 1 and accelerator.sync_gradients
    assert not accelerator.optimizer_step_was_skipped
    assert "num_processes=1" in repr(accelerator)


def test_defaults_come_from_the_launcher_environment_and_arguments_win(monkeypatch):
    monkeypatch.setenv("ACCEL_MIXED_PRECISION", "BF16")
    monkeypatch.setenv("ACCEL_GRADIENT_ACCUMULATION_STEPS", "4")
    monkeypatch.setenv("ACCEL_USE_CPU", "yes")
    accelerator = Accelerator()
    assert (accelerator.mixed_precision, accelerator.gradient_accumulation_steps) == ("bf16", 4)
    assert accelerator.device.type == "cpu"
    accelerator = Accelerator(mixed_precision="no", gradient_accumulation_steps=2)
    assert (accelerator.mixed_precision, accelerator.gradient_accumulation_steps) == ("no", 2)


@pytest.mark.parametrize(
    "env, message",
    [
        ({"ACCEL_MIXED_PRECISION": "fp8"}, "ACCEL_MIXED_PRECISION='fp8' is not allowed; allowed: no, fp16, bf16"),
        ({"ACCEL_USE_CPU": "maybe"}, "ACCEL_USE_CPU='maybe' is not a boolean; allowed: true, false, 1, 0, yes, no"),
        ({"ACCEL_GRADIENT_ACCUMULATION_STEPS": "two"}, "ACCEL_GRADIENT_ACCUMULATION_STEPS='two' is not an integer"),
        ({"ACCEL_GRADIENT_ACCUMULATION_STEPS": "0"}, "must be a positive integer (1, 2, ...); got 0"),
        ({"WORLD_SIZE": "x"}, "WORLD_SIZE='x' is not an integer"),
    ],
)
def test_bad_environment_is_named(monkeypatch, env, message):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValueError) as err:
        Accelerator()
    assert message in str(err.value)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mixed_precision": "fp32"}, "unknown mixed precision 'fp32'; allowed: no, fp16, bf16"),
        ({"gradient_accumulation_steps": 0}, "gradient_accumulation_steps must be a positive integer"),
        ({"gradient_accumulation_steps": -2}, "got -2"),
        ({"gradient_accumulation_steps": 1.5}, "got 1.5"),
    ],
)
def test_bad_arguments_say_what_is_allowed(kwargs, message):
    with pytest.raises(ValueError) as err:
        Accelerator(cpu=True, **kwargs)
    assert message in str(err.value)


def test_setting_bad_accumulation_steps_is_refused():
    accelerator = Accelerator(cpu=True)
    with pytest.raises(ValueError, match="positive integer"):
        accelerator.gradient_accumulation_steps = 0


def test_prepare_returns_objects_in_order_and_a_single_object_alone():
    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.Adam(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    loader = DataLoader(TensorDataset(torch.zeros(4, 2)), batch_size=2)
    out = accelerator.prepare(loader, scheduler, optimizer, model)
    assert [type(o) for o in out] == [PreparedDataLoader, AcceleratedScheduler, AcceleratedOptimizer, torch.nn.Linear]
    assert out[1].optimizers == [out[2]]  # the scheduler follows its prepared optimizer
    assert out[3] is model  # one process: the model is not wrapped
    assert accelerator.prepare(torch.nn.Linear(1, 1)).__class__ is torch.nn.Linear
    assert accelerator.prepare(out[2]) is out[2]  # already prepared: unchanged


def test_prepare_refuses_unknown_objects_naming_type_and_allowed():
    accelerator = Accelerator(cpu=True)
    with pytest.raises(TypeError) as err:
        accelerator.prepare(torch.nn.Linear(1, 1), {"lr": 1})
    assert "cannot handle argument 2 of 2, an object of type builtins.dict" in str(err.value)
    assert "allowed: torch.nn.Module, torch.optim.Optimizer, torch.utils.data.DataLoader" in str(err.value)

    class ParamGroups(list):  # what a factory known only by its use might hand back instead of an optimizer
        pass

    with pytest.raises(TypeError, match=r"argument 1 of 1, an object of type .*ParamGroups; allowed: .*factory"):
        accelerator.prepare(ParamGroups())


def test_prepare_passes_none_through_as_accelerate_does():
    # `encoder_optimizer = Adam(...) if fine_tune_encoder else None`, then prepared with the rest
    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    prepared_model, prepared_optimizer, nothing = accelerator.prepare(model, optimizer, None)
    assert nothing is None
    assert isinstance(prepared_optimizer, AcceleratedOptimizer) and prepared_model is model
    assert accelerator.prepare(None) is None


def test_prepare_single_kind_helpers():
    accelerator = Accelerator(cpu=True)
    model = accelerator.prepare_model(torch.nn.Linear(2, 1))
    optimizer = accelerator.prepare_optimizer(torch.optim.SGD(model.parameters(), lr=0.1))
    scheduler = accelerator.prepare_scheduler(torch.optim.lr_scheduler.StepLR(optimizer.optimizer, 1))
    loader = accelerator.prepare_data_loader(DataLoader(list(range(6)), batch_size=4))
    assert isinstance(optimizer, AcceleratedOptimizer) and scheduler.optimizers == [optimizer]
    assert [b.tolist() for b in loader] == [[0, 1, 2, 3], [4, 5]]


def test_a_scheduler_built_after_prepare_from_the_prepared_optimizer():
    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(2, 1)
    optimizer = accelerator.prepare(torch.optim.SGD(model.parameters(), lr=1.0))
    scheduler = accelerator.prepare(torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5))
    model(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    scheduler.step()
    assert scheduler.get_last_lr() == [0.5]
    assert optimizer.state_dict()["param_groups"][0]["lr"] == 0.5


def test_accumulate_equals_one_step_on_the_k_times_batch_and_syncs_at_the_loader_end():
    x, y = torch.randn(12, 3), torch.randn(12, 1)

    def fresh():
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 1)
        return model, torch.optim.SGD(model.parameters(), lr=0.1)

    accelerator = Accelerator(cpu=True, gradient_accumulation_steps=2)
    model, optimizer = fresh()
    model, optimizer, loader = accelerator.prepare(model, optimizer, DataLoader(TensorDataset(x, y), batch_size=4))
    syncs, steps_taken = [], []
    for xb, yb in loader:
        with accelerator.accumulate(model):
            before = model.weight.detach().clone()
            accelerator.backward(torch.nn.functional.mse_loss(model(xb), yb))
            optimizer.step()
            optimizer.zero_grad()
            syncs.append(accelerator.sync_gradients)
            steps_taken.append(not torch.equal(before, model.weight))
    assert syncs == [False, True, True]  # 3 batches, k=2: the last batch of the loader always syncs
    assert steps_taken == syncs  # step/zero_grad are no-ops on the non-sync micro-batch

    # reference: one step on the first 8 rows (the 2x batch), then the short last window, whose single
    # micro-batch loss was still divided by k=2
    check, check_opt = fresh()
    torch.nn.functional.mse_loss(check(x[:8]), y[:8]).backward()
    check_opt.step()
    check_opt.zero_grad()
    (torch.nn.functional.mse_loss(check(x[8:]), y[8:]) / 2).backward()
    check_opt.step()
    for got, want in zip(model.parameters(), check.parameters()):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_backward_divides_by_the_accumulation_steps():
    accelerator = Accelerator(cpu=True, gradient_accumulation_steps=4)
    w = torch.ones(3, requires_grad=True)
    accelerator.backward((w * 2).sum())
    assert w.grad.tolist() == [0.5, 0.5, 0.5]
    accelerator.backward((w * 2).sum(), retain_graph=False)  # kwargs reach torch's backward
    assert w.grad.tolist() == [1.0, 1.0, 1.0]


def test_no_sync_with_one_process_still_computes_gradients():
    accelerator = Accelerator(cpu=True)
    model = accelerator.prepare(torch.nn.Linear(2, 1))
    with accelerator.no_sync(model):
        model(torch.ones(1, 2)).sum().backward()
    assert model.weight.grad.tolist() == [[1.0, 1.0]]


def test_clip_grad_norm_and_value():
    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(2, 1, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer = accelerator.prepare(model, optimizer)
    model.weight.grad = torch.tensor([[3.0, 4.0]])
    norm = accelerator.clip_grad_norm_(model.parameters(), max_norm=1.0)
    assert norm.item() == pytest.approx(5.0)
    torch.testing.assert_close(model.weight.grad, torch.tensor([[0.6, 0.8]]), rtol=1e-5, atol=1e-6)
    model.weight.grad = torch.tensor([[3.0, -4.0]])
    accelerator.clip_grad_value_(model.parameters(), clip_value=0.5)
    assert model.weight.grad.tolist() == [[0.5, -0.5]]


def test_gather_reduce_broadcast_pad_with_one_process_are_identities():
    accelerator = Accelerator(cpu=True)
    t = torch.tensor([[1.0, 2.0]])
    assert torch.equal(accelerator.gather(t), t)
    assert accelerator.gather(torch.tensor(3.0)).tolist() == 3.0
    assert torch.equal(accelerator.gather_for_metrics({"p": t})["p"], t)
    assert accelerator.gather_for_metrics(["a", "b"]) == ["a", "b"]
    assert accelerator.gather_for_metrics(["a"], use_gather_object=True) == ["a"]
    assert accelerator.reduce(t, "mean").tolist() == [[1.0, 2.0]]
    assert accelerator.reduce([t], "sum")[0].tolist() == [[1.0, 2.0]]
    assert accelerator.broadcast(t).tolist() == [[1.0, 2.0]]
    assert accelerator.pad_across_processes(t, dim=1).tolist() == [[1.0, 2.0]]
    accelerator.wait_for_everyone()


def test_reduce_and_gather_refuse_bad_input():
    accelerator = Accelerator(cpu=True)
    with pytest.raises(ValueError, match="unknown reduction 'avg'; allowed: sum, mean, max, none"):
        accelerator.reduce(torch.ones(1), "avg")
    with pytest.raises(TypeError, match="expected a tensor or a \\(nested\\) list/tuple/dict of tensors, got str"):
        accelerator.gather(["text"])


def test_split_between_processes_with_one_process_gets_everything():
    accelerator = Accelerator(cpu=True)
    with accelerator.split_between_processes([1, 2, 3]) as share:
        assert share == [1, 2, 3]
    with pytest.raises(TypeError, match="cannot split a int; allowed: list, tuple"), \
            accelerator.split_between_processes(5):
        pass


def test_split_between_processes_shares_for_other_ranks():
    from accel.ops import split_for_process

    items = list(range(7))
    assert [split_for_process(items, 3, r) for r in range(3)] == [[0, 1, 2], [3, 4], [5, 6]]
    assert [split_for_process(items, 3, r, True) for r in range(3)] == [[0, 1, 2], [3, 4, 6], [5, 6, 6]]
    assert split_for_process(torch.arange(5), 2, 1, True).tolist() == [3, 4, 4]


def test_print_and_process_decorators_and_contexts(capsys):
    accelerator = Accelerator(cpu=True)
    accelerator.print("hello", 1)
    assert capsys.readouterr().out == "hello 1\n"
    assert accelerator.on_main_process(lambda: 7)() == 7
    assert accelerator.on_local_main_process(lambda: 8)() == 8
    assert accelerator.on_process(lambda: 9, process_index=0)() == 9
    assert accelerator.on_process(process_index=1)(lambda: 9)() is None
    ran = []
    with accelerator.main_process_first():
        ran.append("main")
    with accelerator.local_main_process_first():
        ran.append("local")
    assert ran == ["main", "local"]


def test_unwrap_model_and_state_dict():
    accelerator = Accelerator(cpu=True, mixed_precision="bf16")
    raw = torch.nn.Linear(2, 2)
    model = accelerator.prepare(raw)
    assert accelerator.unwrap_model(model) is raw
    assert "forward" in raw.__dict__  # the autocast wrapper is kept by default
    assert accelerator.unwrap_model(model, keep_fp32_wrapper=False) is raw
    assert "forward" not in raw.__dict__
    assert sorted(accelerator.get_state_dict(model)) == ["bias", "weight"]
    compiled_like = torch.nn.Module()
    compiled_like._orig_mod = raw
    assert accelerator.unwrap_model(compiled_like) is raw


def test_save_is_atomic_and_leaves_no_temporary_file(tmp_path):
    accelerator = Accelerator(cpu=True)
    target = tmp_path / "ckpt.pt"
    accelerator.save({"w": torch.ones(2)}, target)
    assert torch.load(target)["w"].tolist() == [1.0, 1.0]
    with pytest.raises((AttributeError, TypeError, pickle.PicklingError)):
        accelerator.save({"bad": lambda: 0}, target)  # cannot be pickled
    assert torch.load(target)["w"].tolist() == [1.0, 1.0]  # the previous file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_free_memory_forgets_prepared_objects():
    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(1, 1)
    model, optimizer = accelerator.prepare(model, torch.optim.SGD(model.parameters(), lr=1))
    assert accelerator.free_memory(model, optimizer) == [None, None]
    assert accelerator._models == [] and accelerator._optimizers == []


def test_end_training_with_one_process():
    accelerator = Accelerator(cpu=True)
    accelerator.end_training()
    assert not torch.distributed.is_initialized()


def test_skip_first_batches_resumes_mid_epoch():
    accelerator = Accelerator(cpu=True)
    loader = accelerator.prepare(DataLoader(list(range(10)), batch_size=2))
    resumed = accelerator.skip_first_batches(loader, 3)
    assert len(resumed) == 2
    assert [b.tolist() for b in resumed] == [[6, 7], [8, 9]]


def test_set_seed_repeats_every_generator(monkeypatch):
    def draw():
        return random.random(), float(np.random.rand()), torch.rand(1).item()

    set_seed(5)
    first = draw()
    accel.set_seed(5)
    assert draw() == first
    monkeypatch.setenv("RANK", "1")
    set_seed(4, device_specific=True)  # seed 4 + process index 1
    assert draw() == first


def test_preparing_a_prepared_model_again_changes_nothing():
    accelerator = Accelerator(cpu=True, mixed_precision="bf16")
    model = accelerator.prepare(torch.nn.Linear(2, 2))
    forward = model.forward
    assert accelerator.prepare(model) is model and accelerator.prepare_model(model) is model
    assert model.forward is forward and len(accelerator._models) == 1
