"""Run under `accel launch --num-processes 2 --cpu`: exercises the Accelerator across processes and writes what
each process saw to <out_dir>/rank<R>.pt for tests/runtime/test_distributed.py to compare."""

import os
import sys

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from accel import Accelerator

out_dir = sys.argv[1]
device_arg = sys.argv[2] if len(sys.argv) > 2 else "cpu"  # "cpu" or "cuda": where the runtime runs
mixed_precision = sys.argv[3] if len(sys.argv) > 3 else "no"
results = {}


class Indices(Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return torch.tensor(i)


def data(n=16):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 4, generator=g), torch.randn(n, 1, generator=g)


def fresh_model():
    torch.manual_seed(0)
    return torch.nn.Linear(4, 1)


accelerator = Accelerator(cpu=device_arg == "cpu", mixed_precision=mixed_precision)
rank, world = accelerator.process_index, accelerator.num_processes
results["state"] = {
    "rank": rank, "world": world, "local": accelerator.local_process_index, "device": str(accelerator.device),
    "distributed_type": accelerator.distributed_type.value, "main": accelerator.is_main_process,
    "local_main": accelerator.is_local_main_process,
}

# 1. DDP training: 4 samples per process per step, 2 steps
x, y = data()
model = fresh_model()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
loader = DataLoader(TensorDataset(x, y), batch_size=4)
model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
results["train_batches"] = len(loader)
for xb, yb in loader:
    loss = torch.nn.functional.mse_loss(model(xb), yb)
    accelerator.backward(loss)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()
results["ddp_params"] = [p.detach().cpu() for p in accelerator.unwrap_model(model).parameters()]
results["scheduler_last_epoch"] = scheduler.last_epoch

# 2. accumulate: 2 micro-batches of 4 per process, one optimizer step
accelerator.gradient_accumulation_steps = 2
model = fresh_model()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
loader = DataLoader(TensorDataset(x, y), batch_size=4)
model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
grads, syncs = [], []
for xb, yb in loader:
    with accelerator.accumulate(model):
        loss = torch.nn.functional.mse_loss(model(xb), yb)
        accelerator.backward(loss)
        grads.append(accelerator.unwrap_model(model).weight.grad.detach().cpu().clone())
        syncs.append(accelerator.sync_gradients)
        optimizer.step()
        optimizer.zero_grad()
results["accumulate_grads"] = grads
results["accumulate_syncs"] = syncs
results["accumulate_params"] = [p.detach().cpu() for p in accelerator.unwrap_model(model).parameters()]
accelerator.gradient_accumulation_steps = 1

# 3. gather_for_metrics over 10 samples, 3 per process per batch (padded last round)
gathered, gathered_obj = [], []
for batch in accelerator.prepare(DataLoader(Indices(10), batch_size=3)):
    gathered.append(accelerator.gather_for_metrics(batch))
    gathered_obj.extend(accelerator.gather_for_metrics([f"s{i}" for i in batch.tolist()], use_gather_object=True))
results["gather_for_metrics"] = torch.cat(gathered).cpu().tolist()
results["gather_for_metrics_objects"] = gathered_obj
accelerator.split_batches = True
split_loader = accelerator.prepare(DataLoader(Indices(10), batch_size=4))
accelerator.split_batches = False
results["split_len"] = len(split_loader)
results["split_batches"] = [b.cpu().tolist() for b in split_loader]
results["split_gathered"] = torch.cat([accelerator.gather_for_metrics(b) for b in split_loader]).cpu().tolist()

# 4. shuffling: same order on every process, every sample once per epoch, set_epoch forwarded
torch.manual_seed(100 + rank)  # different global RNG per process: the loader must still agree
shuffled = accelerator.prepare(DataLoader(Indices(12), batch_size=2, shuffle=True))
results["shuffled_epochs"] = [torch.cat([accelerator.gather(b) for b in shuffled]).cpu().tolist() for _ in range(2)]
results["shuffled_local"] = [b.cpu().tolist() for b in shuffled]

# 5. collectives
t = torch.tensor([float(rank + 1), 10.0 * (rank + 1)], device=accelerator.device)
results["reduce"] = {r: accelerator.reduce(t, r).cpu().tolist() for r in ("sum", "mean", "max", "none")}
results["reduce_nested"] = accelerator.reduce({"a": [t]}, "sum")["a"][0].cpu().tolist()
results["gather_scalar"] = accelerator.gather(torch.tensor(float(rank), device=accelerator.device)).cpu().tolist()
results["gather_nested"] = accelerator.gather({"x": torch.full((2,), rank, device=accelerator.device)})["x"].cpu().tolist()
results["broadcast"] = accelerator.broadcast(torch.tensor([rank + 5], device=accelerator.device), from_process=1).cpu().tolist()
ragged = torch.full((rank + 1, 2), rank + 1, device=accelerator.device)
results["pad"] = accelerator.pad_across_processes(ragged, dim=0, pad_index=-1).cpu().tolist()
results["pad_first"] = accelerator.pad_across_processes(ragged, dim=0, pad_index=-1, pad_first=True).cpu().tolist()
with accelerator.split_between_processes(list(range(5))) as share:
    results["split_list"] = share
with accelerator.split_between_processes({"a": [1, 2, 3], "b": torch.arange(3)}, apply_padding=True) as share:
    results["split_dict_padded"] = {"a": share["a"], "b": share["b"].tolist()}

# 6. process control
order_file = os.path.join(out_dir, "order.txt")
with accelerator.main_process_first(), open(order_file, "a") as fh:
    fh.write(f"{rank}\n")
accelerator.wait_for_everyone()


@accelerator.on_main_process
def main_only():
    return "main"


@accelerator.on_local_main_process
def local_main_only():
    return "local main"


@accelerator.on_process(process_index=1)
def second_only():
    return "second"


results["decorated"] = [main_only(), local_main_only(), second_only()]
accelerator.print(f"printed by rank {rank}")
target = os.path.join(out_dir, "saved.pt")
accelerator.save({"rank": rank}, target)
accelerator.wait_for_everyone()
results["saved"] = torch.load(target)
results["state_dict_keys"] = sorted(accelerator.get_state_dict(model))
results["leftover_tmp"] = [f for f in os.listdir(out_dir) if f.startswith(".tmp-")]

torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
accelerator.end_training()
