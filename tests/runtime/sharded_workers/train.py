"""Train a small two-block model with whatever backend `accel launch` selects; write what happened as JSON.

Usage: train.py OUT.json [--steps N] [--samples N] [--width N] [--save DIR] [--resume DIR --skip N] [--seed-by-rank]
The optimizer and the LR scheduler are created before `prepare` (FSDP re-binds them; DeepSpeed wraps them).
Every backward is followed by an (eventually no-op) optimizer step, inside `accumulate`, with norm clipping.
"""

import argparse
import json
import os

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from accel import Accelerator, set_seed


class Block(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.linear = nn.Linear(width, width)

    def forward(self, x):
        return x + torch.tanh(self.linear(x))


class Net(nn.Module):
    def __init__(self, width: int = 16):
        super().__init__()
        self.embed = nn.Linear(8, width)
        self.blocks = nn.Sequential(Block(width), Block(width))
        self.head = nn.Linear(width, 1)

    def forward(self, x):
        return self.head(self.blocks(self.embed(x)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--steps", type=int, default=None, help="stop after this many batches")
    parser.add_argument("--save", default=None, help="checkpoint directory to write at the end")
    parser.add_argument("--resume", default=None, help="checkpoint directory to continue from")
    parser.add_argument("--skip", type=int, default=0, help="batches already consumed before --resume")
    parser.add_argument("--samples", type=int, default=64, help="dataset size (batches of 4 per process)")
    parser.add_argument("--width", type=int, default=16, help="hidden width of the model")
    parser.add_argument("--seed-by-rank", action="store_true", help="initialise the model differently on each process")
    args = parser.parse_args()

    set_seed(0)
    data = TensorDataset(torch.randn(args.samples, 8), torch.randn(args.samples, 1))
    loader = DataLoader(data, batch_size=4, shuffle=False)
    if args.seed_by_rank:  # as scripts that seed with an offset per rank do: prepare must start all from one model
        torch.manual_seed(100 + int(os.environ.get("RANK", "0")))
    model = Net(args.width)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1 + 0.1 * step))

    accelerator = Accelerator()
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    backend = accelerator.backend
    if args.resume:
        backend.load_checkpoint(args.resume, model, optimizer)
        scheduler.load_state_dict(torch.load(os.path.join(args.resume, "scheduler.pt"), weights_only=True))
        loader = accelerator.skip_first_batches(loader, args.skip)

    losses, norms = [], []
    for step, (x, y) in enumerate(loader):
        if args.steps is not None and step >= args.steps:
            break
        with accelerator.accumulate(model):
            loss = nn.functional.mse_loss(model(x), y)
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                norms.append(float(accelerator.clip_grad_norm_(model.parameters(), 1.0)))
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
        losses.append(accelerator.reduce(loss.detach().float(), "mean").item())

    if args.save:
        backend.save_checkpoint(args.save, model, optimizer)
        accelerator.save(scheduler.state_dict(), os.path.join(args.save, "scheduler.pt"))

    device = accelerator.device
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
    peak_memory = accelerator.gather(torch.tensor([peak], device=device)).tolist()  # one entry per process
    weights = accelerator.get_state_dict(model)
    unwrapped = accelerator.unwrap_model(model)
    if accelerator.is_main_process:
        result = {
            "distributed_type": accelerator.distributed_type.value,
            "losses": losses,
            "norms": norms,
            "lr": scheduler.get_last_lr()[0],
            "weights": {name: tensor.float().flatten().tolist() for name, tensor in weights.items()},
            "unwrapped_class": type(unwrapped).__name__,
            "param_types": sorted({type(p.data).__name__ for p in unwrapped.parameters()}),
            "peak_memory_bytes": peak_memory,
        }
        with open(args.out, "w") as handle:
            json.dump(result, handle)
    accelerator.end_training()


if __name__ == "__main__":
    main()
