"""Output check, invariant 6: every object passed to prepare is bound on every path that reaches it."""

from __future__ import annotations

from textwrap import dedent, indent

from accel_convert.check import check

HEAD = """\
import torch
from torch.utils.data import DataLoader, TensorDataset
from accel import Accelerator


def main(args):
    accelerator = Accelerator()
    data = TensorDataset(torch.randn(16, 4))
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    train_loader = DataLoader(data, batch_size=4)
"""


def _body(text: str) -> str:
    return indent(dedent(text), "    ")


def _found(after: str):
    return [(v.invariant, v.binding) for v in check(after, after)]


def test_a_validation_loader_built_only_on_the_main_process():
    """Shape 6 of issue 9: UnboundLocalError on every other rank."""
    after = HEAD + _body(
        """\
            if accelerator.is_main_process:
                val_loader = DataLoader(data, batch_size=8)
            model, optimizer, train_loader, val_loader = accelerator.prepare(
                model, optimizer, train_loader, val_loader
            )
        """
    )
    violations = check(after, after)
    assert [(v.invariant, v.binding, v.scope) for v in violations] == [("prepare-arg-unbound", "val_loader", "main")]
    assert violations[0].line == after.splitlines().index(
        "    model, optimizer, train_loader, val_loader = accelerator.prepare("
    ) + 1


def test_rank_conditions_loops_and_module_level():
    rank = HEAD + _body(
        """\
            if args.rank == 0:
                val_loader = DataLoader(data, batch_size=8)
            elif args.rank == 1:
                val_loader = None
            model, val_loader = accelerator.prepare(model, val_loader)
        """
    )
    assert _found(rank) == [("prepare-arg-unbound", "val_loader")]
    loop = HEAD + _body(
        """\
            for name in args.extra:
                extra = DataLoader(data, batch_size=2)
            model, extra = accelerator.prepare(model, extra)
        """
    )
    assert _found(loop) == [("prepare-arg-unbound", "extra")]
    module = dedent(
        """\
        import torch
        from accel import Accelerator

        accelerator = Accelerator()
        if accelerator.is_local_main_process:
            model = torch.nn.Linear(2, 2)
        model = accelerator.prepare(model)
        """
    )
    assert _found(module) == [("prepare-arg-unbound", "model")]


def test_bound_on_every_path_passes():
    shapes = [
        """\
            if accelerator.is_main_process:
                val_loader = DataLoader(data, batch_size=8)
            else:
                val_loader = None
            model, val_loader = accelerator.prepare(model, val_loader)
        """,
        """\
            val_loader = None
            if accelerator.is_main_process:
                val_loader = DataLoader(data, batch_size=8)
            model, val_loader = accelerator.prepare(model, val_loader)
        """,
        """\
            if args.validate:
                val_loader = DataLoader(data, batch_size=8)
            if args.validate:
                model, val_loader = accelerator.prepare(model, val_loader)
        """,
        """\
            if not args.validate:
                return
            val_loader = DataLoader(data, batch_size=8)
            model, val_loader = accelerator.prepare(model, val_loader)
        """,
        """\
            try:
                val_loader = DataLoader(data, batch_size=8)
            except RuntimeError:
                raise SystemExit(1)
            with torch.no_grad():
                model, val_loader = accelerator.prepare(model, val_loader)
        """,
    ]
    for shape in shapes:
        assert _found(HEAD + _body(shape)) == [], shape
