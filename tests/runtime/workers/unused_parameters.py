"""Two processes train a model whose forward leaves a branch unused, once with DistributedDataParallelKwargs(
find_unused_parameters=True) and once without; each process saves what it saw in rank<R>.pt (argv[1])."""

import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from accel import Accelerator, DistributedDataParallelKwargs


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.used = nn.Linear(4, 1)
        self.unused = nn.Linear(4, 1)  # never called: DDP waits for its gradient unless told otherwise

    def forward(self, x):
        return self.used(x)


def data(n=16):
    g = torch.Generator().manual_seed(1)
    return TensorDataset(torch.randn(n, 4, generator=g), torch.randn(n, 1, generator=g))


def train(accelerator):
    """The trained weights, and the communication hook DDP reports."""
    torch.manual_seed(0)
    model = Branchy()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer, loader = accelerator.prepare(model, optimizer, DataLoader(data(), batch_size=4))
    for x, y in loader:
        loss = nn.functional.mse_loss(model(x), y)
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
    weights = {k: v.detach().clone() for k, v in accelerator.unwrap_model(model).state_dict().items()}
    return weights, model._get_ddp_logging_data().get("comm_hook")


def accelerator(**options):
    return Accelerator(kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True, **options)])


with_option = accelerator()
results = {"params": train(with_option)[0], "find_unused": with_option.prepare(nn.Linear(1, 1)).find_unused_parameters}
results["fp16_params"], results["fp16_hook"] = train(accelerator(comm_hook="fp16"))
try:
    train(Accelerator())
    results["error"] = None
except RuntimeError as error:
    results["error"] = str(error)
torch.save(results, Path(sys.argv[1]) / f"rank{with_option.process_index}.pt")
