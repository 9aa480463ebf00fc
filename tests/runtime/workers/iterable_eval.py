"""Two processes evaluate a model over IterableDatasets without ``__len__`` through ``gather_for_metrics``;
each process saves what it gathered in rank<R>.pt (argv[1])."""

import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from accel import Accelerator


class Stream(IterableDataset):
    """``n`` samples (index, features, target) read one by one; the length is unknown to the loader. Under
    DataLoader workers each reads every ``num_workers``-th sample (the usual ``get_worker_info`` split)."""

    def __init__(self, n):
        self.n = n

    def __iter__(self):
        worker = get_worker_info()
        first, step = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        g = torch.Generator().manual_seed(3)
        for index in range(self.n):
            features, target = torch.randn(4, generator=g), torch.randn(1, generator=g)
            if index % step == first:
                yield index, features, target


def main():
    accelerator = Accelerator()
    torch.manual_seed(0)
    model = accelerator.prepare(torch.nn.Linear(4, 1))
    results = {}
    for n, batch_size, num_workers in ((10, 3, 0), (7, 3, 2), (12, 3, 0)):
        loader = accelerator.prepare(DataLoader(Stream(n), batch_size=batch_size, num_workers=num_workers))
        indices, errors, objects = [], [], []
        with torch.no_grad():
            for index, x, y in loader:
                prediction = model(x)
                gathered_index, gathered_error = accelerator.gather_for_metrics((index, (prediction - y).pow(2).sum(1)))
                indices += gathered_index.tolist()
                errors.append(gathered_error)
                objects += accelerator.gather_for_metrics(index.tolist(), use_gather_object=True)
        results[n] = {"indices": indices, "mse": torch.cat(errors).mean().item(), "objects": objects}
    torch.save(results, Path(sys.argv[1]) / f"rank{accelerator.process_index}.pt")
    accelerator.end_training()


if __name__ == "__main__":
    main()
