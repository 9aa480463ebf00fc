"""Output check API: Violation's fields, sorting, BOM, pre-parsed trees, the invariant ids."""

from __future__ import annotations

import ast
from textwrap import dedent

from accel_convert.check import INVARIANTS, Violation, check, parse

AFTER = dedent(
    """\
    import torch
    from accel import Accelerator

    accelerator = Accelerator()
    if accelerator.is_main_process:
        model = torch.nn.Linear(2, 2)
    agent = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(agent.parameters(), lr=0.1)
    model, agent, optimizer = accelerator.prepare(model, agent, optimizer)
    loss = accelerator.unwrap_model(agent).forward(torch.randn(3, 2)).sum()
    accelerator.backward(loss)
    """
)


def test_violations_are_sorted_frozen_and_formatted():
    violations = check(AFTER, AFTER)
    assert [(v.invariant, v.binding, v.line, v.scope) for v in violations] == [
        ("prepare-arg-unbound", "model", 9, ""),
        ("backward-unwrapped", "agent", 10, ""),
    ]
    assert all(v.invariant in INVARIANTS for v in violations)
    assert violations[0].format("train.py").startswith("train.py:9: prepare-arg-unbound: `model`")
    assert isinstance(violations[0], Violation) and hash(violations[0])


def test_a_byte_order_mark_and_given_trees():
    assert check("\ufeff" + AFTER, "\ufeff" + AFTER) == check(AFTER, AFTER)
    tree = parse("\ufeff" + AFTER)
    assert check(AFTER, AFTER, before_tree=tree, after_tree=ast.parse(AFTER)) == check(AFTER, AFTER)


def test_a_file_without_training_code_has_no_violation():
    assert check("x = 1\n", "x = 1\n") == []
