"""AC021 unconverted-patterns: the exact diagnostics for optimizer wrappers, backward passes in helper classes,
hand-written parameter updates without an optimizer, and apex AMP."""

from __future__ import annotations

import pytest

from accel_convert.convert import convert_source
from accel_convert.model import Diagnostic
from tests.transform.cli_helpers import work

HIDDEN = '''\
import torch


class Lookahead:
    def __init__(self, optimizer):
        self.optimizer = optimizer

    def step(self):
        self.optimizer.step()

    def zero_grad(self):
        self.optimizer.zero_grad()


class Stepper:
    def __init__(self, model, optimizer):
        self.model = model
        self.optimizer = optimizer

    def train_step(self, x):
        loss = self.model(x).sum()
        loss.backward()
        self.optimizer.step()


def main():
    model = torch.nn.Linear(2, 1)
    base = torch.optim.SGD(model.parameters(), lr=0.1)
    optimizer = Lookahead(base)
    stepper = Stepper(model, optimizer)
    for x in torch.randn(4, 3, 2):
        optimizer.zero_grad()
        stepper.train_step(x)
        optimizer.step()


main()
'''
STEPPER_BY_NAME = HIDDEN
# the helper class is given its model and optimizer by a caller outside the file: no training run here
FROM_A_CALLER = HIDDEN[: HIDDEN.index("def main():")] + """\
def fit(model, optimizer):
    stepper = Stepper(model, optimizer)
    for x in torch.randn(4, 3, 2):
        stepper.train_step(x)
"""
NAMED_WRAPPER = '''\
import torch


class Warmup:
    def __init__(self, optimizer, steps):
        self.optimizer = optimizer
        self.steps = steps

    def step(self):
        for group in self.optimizer.param_groups:
            group["lr"] = min(1.0, group["lr"] * 2)


class Counter:
    def step(self):
        pass


def main():
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    warmup = Warmup(optimizer, steps=10)
    counter = Counter()
    for x in torch.randn(4, 3, 2):
        optimizer.zero_grad()
        model(x).sum().backward()
        optimizer.step()
        warmup.step()
        counter.step()


main()
'''
INLINE_WRAPPER = '''\
import torch


class Lookahead:
    def __init__(self, optimizer):
        self.optimizer = optimizer

    def step(self):
        self.optimizer.step()


def main():
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    slow = Lookahead(torch.optim.SGD(model.parameters(), lr=0.01))
    for x in torch.randn(4, 3, 2):
        optimizer.zero_grad()
        model(x).sum().backward()
        optimizer.step()
        slow.step()


main()
'''
WRAPS = "wraps an optimizer and has its own `step()`, which is not converted"


def _reported(text: str) -> list[Diagnostic]:
    return [d for d in convert_source(text).diagnostics if d.code == "AC021"]


def test_without_a_training_run_the_helpers_backward_is_named():
    result = convert_source(FROM_A_CALLER)
    assert result.text == FROM_A_CALLER
    assert list(result.diagnostics) == [
        Diagnostic(
            "AC021",
            22,
            9,
            "`loss.backward()` runs in `Stepper.train_step`, a helper class that is not an `nn.Module`: give the helper "
            "the accelerator, the prepared model and optimizer, and call `accelerator.backward(...)` there",
        ),
    ]


def test_a_helper_class_called_through_the_name_it_is_bound_to_is_handed_the_accelerator():
    # stepper = Stepper(model, optimizer); stepper.train_step(x): the method is followed, the run converted
    result = convert_source(STEPPER_BY_NAME)
    assert "    def __init__(self, model, optimizer, accelerator):\n        self.accelerator = accelerator\n" in result.text
    assert "        self.accelerator.backward(loss)\n" in result.text
    assert "    model, base = accelerator.prepare(model, base)\n" in result.text
    assert [d.code for d in result.diagnostics if d.severity == "work"] == ["AC021"]  # the Lookahead wrapper


def test_a_wrapper_of_a_prepared_optimizer_is_named_and_a_plain_stepper_is_not():
    result = convert_source(NAMED_WRAPPER)
    assert "accelerator.prepare(model, optimizer)" in result.text
    assert _reported(NAMED_WRAPPER) == [
        Diagnostic(
            "AC021",
            22,
            14,
            f"`Warmup` {WRAPS}: check that it wraps the prepared `optimizer` and that its `step()` suits gradient accumulation",
        )
    ]


def test_a_wrapper_of_an_inline_optimizer_is_told_to_name_it():
    assert _reported(INLINE_WRAPPER) == [
        Diagnostic(
            "AC021",
            15,
            12,
            f"`Lookahead` {WRAPS}: create the inner optimizer on its own line, so that `accelerator.prepare` gets it, "
            "and wrap the prepared one",
        )
    ]


def test_with_a_training_run_the_helpers_backward_is_left_to_ac004():
    # the class is built in main(), where the accelerator is: AC004 hands it over and converts the backward
    text = STEPPER_BY_NAME.replace("    optimizer = Lookahead(base)\n", "    optimizer = base\n")
    result = convert_source(text)
    assert work(result) == []
    assert "        self.accelerator.backward(loss)\n" in result.text
    assert "    stepper = Stepper(model, optimizer, accelerator=accelerator)\n" in result.text
    # built at module level, away from main()'s accelerator: the backward is left, with AC004's diagnostic
    outside = text.replace("    stepper = Stepper(model, optimizer)\n", "").replace("def main():", "stepper = Stepper(None, None)\n\n\ndef main():")
    assert list(convert_source(outside).diagnostics) == [
        Diagnostic("AC004", 22, 9, "`loss.backward()` left as is: `train_step` cannot reach the accelerator")
    ]


NO_OPTIMIZER = '''\
import torch

model = torch.nn.Linear(3, 1)
for step in range(10):
    model.zero_grad()
    loss = model(torch.randn(8, 3)).pow(2).mean()
    loss.backward()
    for param in model.parameters():
        param.data.add_(-0.1 * param.grad)
'''
NOTHING_CONVERTED = (
    "nothing converted: there is nothing to prepare, and under several processes each one would train its own copy "
    "of the parameters; use an optimizer from `torch.optim` and accel-convert converts the script"
)


@pytest.mark.parametrize(
    ("update", "shown", "position"),
    [
        ("        param.data.add_(-0.1 * param.grad)\n", "`param.data.add_(-0.1 * param.grad)`", (9, 9)),
        ("        param.data = param.data - 0.1 * param.grad\n", "`param.data = param.data - 0.1 * param.grad`", (9, 9)),
        ("        with torch.no_grad():\n            param -= 0.1 * param.grad\n", "`param -= 0.1 * param.grad`", (10, 13)),
    ],
    ids=["in-place-call", "rebinding", "augmented"],
)
def test_hand_written_updates_without_an_optimizer_are_named_and_the_file_is_unchanged(update, shown, position):
    text = NO_OPTIMIZER.replace("        param.data.add_(-0.1 * param.grad)\n", update)
    result = convert_source(text)
    assert result.text == text
    message = f"{shown} updates the parameters by hand, without a `torch.optim` optimizer; {NOTHING_CONVERTED}"
    assert list(result.diagnostics) == [Diagnostic("AC021", *position, message)]


def test_a_backward_without_any_optimizer_or_update_says_why_nothing_changed():
    text = NO_OPTIMIZER.replace("    for param in model.parameters():\n        param.data.add_(-0.1 * param.grad)\n", "")
    assert list(convert_source(text).diagnostics) == [
        Diagnostic(
            "AC021",
            7,
            5,
            f"`loss.backward()` is called, but no `torch.optim` optimizer is created in this file; {NOTHING_CONVERTED}",
        )
    ]


def test_a_script_without_backward_stays_silent_and_identical():
    text = NO_OPTIMIZER.replace("    loss.backward()\n", "").replace("param.grad", "param")
    result = convert_source(text)
    assert (result.text, result.diagnostics) == (text, ())


APEX = '''\
import torch
import apex

model = torch.nn.Linear(3, 1).cuda()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
model, optimizer = apex.amp.initialize(model, optimizer, opt_level="O1")
for x in torch.randn(4, 8, 3):
    optimizer.zero_grad()
    with apex.amp.scale_loss(model(x.cuda()).sum(), optimizer) as scaled:
        scaled.backward()
    optimizer.step()
'''


def test_apex_amp_leaves_the_file_unchanged_with_one_diagnostic():
    result = convert_source(APEX)
    assert result.text == APEX
    assert list(result.diagnostics) == [
        Diagnostic(
            "AC021",
            6,
            20,
            "`apex.amp.initialize` is NVIDIA apex's mixed precision, which must wrap the model before "
            "`accelerator.prepare` and runs its own backward pass: nothing converted; replace it with `torch.amp` "
            "(`torch.autocast` and `torch.amp.GradScaler`, the plain optimizer and `loss.backward()`) first, then run "
            "accel-convert again, which converts that",
        )
    ]


APEX_FP16_OPTIMIZER = '''\
import torch


def main(fp16):
    model = torch.nn.Linear(3, 1).cuda()
    if fp16:
        from apex.optimizers import FP16_Optimizer, FusedAdam
        optimizer = FusedAdam(model.parameters(), lr=0.1)
        optimizer = FP16_Optimizer(optimizer, dynamic_loss_scale=True)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    for x in torch.randn(4, 8, 3):
        loss = model(x.cuda()).sum()
        if fp16:
            optimizer.backward(loss)
        else:
            loss.backward()
        optimizer.step()
        optimizer.zero_grad()
'''


def test_apex_fp16_optimizer_leaves_the_file_unchanged_naming_it():
    result = convert_source(APEX_FP16_OPTIMIZER)
    assert result.text == APEX_FP16_OPTIMIZER
    assert [(d.code, d.line) for d in result.diagnostics] == [("AC021", 9)]
    assert result.diagnostics[0].message.startswith(
        "`FP16_Optimizer` is NVIDIA apex's fp16 optimizer wrapper, which keeps fp32 master weights and runs its own "
        "scaled backward (`optimizer.backward(loss)`): nothing converted"
    )
