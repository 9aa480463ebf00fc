"""Output check, invariant 4: no DistributedSampler under a prepared loader."""

from __future__ import annotations

from textwrap import dedent

from accel_convert.check import check


def _found(after: str):
    return [(v.invariant, v.binding) for v in check(after, after)]


def test_a_distributed_sampler_built_in_a_helper_under_if_args_distributed():
    """Shape 4 of issue 9: torchvision's load_data(...) returns the sampler it made under `if args.distributed:`."""
    after = dedent(
        """\
        import argparse

        import torch
        from torch.utils.data import DataLoader, RandomSampler, TensorDataset
        from accel import Accelerator


        def load_data(args):
            dataset = TensorDataset(torch.randn(96, 4), torch.randint(0, 2, (96,)))
            if args.distributed:
                train_sampler = torch.utils.data.distributed.DistributedSampler(dataset)
            else:
                train_sampler = RandomSampler(dataset)
            return dataset, train_sampler


        def main(args):
            accelerator = Accelerator()
            dataset, train_sampler = load_data(args)
            data_loader = DataLoader(dataset, batch_size=8, sampler=train_sampler)
            model = torch.nn.Linear(4, 2)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            model, optimizer, data_loader = accelerator.prepare(model, optimizer, data_loader)


        if __name__ == "__main__":
            parser = argparse.ArgumentParser()
            parser.add_argument("--distributed", action="store_true")
            main(parser.parse_args())
        """
    )
    violations = check(after, after)
    assert [(v.invariant, v.binding, v.scope) for v in violations] == [
        ("sampler-under-prepare", "data_loader", "main")
    ]
    assert violations[0].line == after.splitlines().index(
        "    data_loader = DataLoader(dataset, batch_size=8, sampler=train_sampler)"
    ) + 1


def test_inline_and_batch_sampler_shapes():
    after = dedent(
        """\
        import torch
        from torch.utils.data import BatchSampler, DataLoader, TensorDataset
        from torch.utils.data.distributed import DistributedSampler
        from accel import Accelerator

        accelerator = Accelerator()
        data = TensorDataset(torch.randn(16, 4))
        inline = DataLoader(data, batch_size=4, sampler=DistributedSampler(data) if True else None)
        batches = BatchSampler(DistributedSampler(data), batch_size=4, drop_last=False)
        batched = DataLoader(data, batch_sampler=batches)
        model = torch.nn.Linear(4, 2)
        model, inline, batched = accelerator.prepare(model, inline, batched)
        """
    )
    assert _found(after) == [("sampler-under-prepare", "inline"), ("sampler-under-prepare", "batched")]


def test_a_loader_without_a_distributed_sampler_or_not_prepared_passes():
    after = dedent(
        """\
        import torch
        from torch.utils.data import DataLoader, RandomSampler, TensorDataset
        from torch.utils.data.distributed import DistributedSampler
        from accel import Accelerator

        accelerator = Accelerator()
        data = TensorDataset(torch.randn(16, 4))
        loader = DataLoader(data, batch_size=4, sampler=RandomSampler(data))
        kept = DataLoader(data, batch_size=4, sampler=DistributedSampler(data, num_replicas=1, rank=0))
        model = torch.nn.Linear(4, 2)
        model, loader = accelerator.prepare(model, loader)
        """
    )
    assert _found(after) == []


def test_a_distributed_sampler_passed_through_loader_kwargs():
    after = dedent(
        """\
        import torch
        from torch.utils.data import DataLoader, TensorDataset
        from torch.utils.data.distributed import DistributedSampler
        from accel import Accelerator

        accelerator = Accelerator()
        data = TensorDataset(torch.randn(16, 4))
        train_kwargs = {"batch_size": 4}
        train_kwargs.update({"sampler": DistributedSampler(data)})
        loader = DataLoader(data, **train_kwargs)
        plain = DataLoader(data, **dict(batch_size=4, shuffle=True))
        model, loader, plain = accelerator.prepare(torch.nn.Linear(4, 2), loader, plain)
        """
    )
    assert _found(after) == [("sampler-under-prepare", "loader")]
