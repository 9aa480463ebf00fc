"""Optimizers known by their use (analysis.used_optimizers): what is stepped after a backward, whatever made it."""

from __future__ import annotations

from textwrap import dedent

import libcst as cst

from accel_convert.analysis.pipeline import analyse
from accel_convert.analysis.roles import MODEL, OPTIMIZER


def roles(source: str) -> dict[str, str]:
    analysis = analyse(cst.parse_module(dedent(source)))
    return {key: role for (_, key), role in analysis.roles.items() if role in (MODEL, OPTIMIZER)}


LOOP = """
for x in loader:
    loss = model(x).sum()
    loss.backward()
    {step}
"""


def test_an_optimizer_made_by_a_method_of_the_model():
    source = "import torch\nmodel = GPT(config)\noptimizer = model.configure_optimizers(0.1, 6e-4)\n" + LOOP.format(step="optimizer.step()")
    assert roles(source) == {"model": MODEL, "optimizer": OPTIMIZER}


def test_an_optimizer_from_a_factory_given_the_model_or_its_parameters():
    for made in ("build_optimizer(cfg, model)", "create_optimizer(model.parameters(), lr=0.1)"):
        source = f"import torch\nmodel = torch.nn.Linear(2, 1)\noptimizer = {made}\n" + LOOP.format(step="optimizer.step()")
        assert roles(source) == {"model": MODEL, "optimizer": OPTIMIZER}, made


def test_an_optimizer_stepped_through_a_grad_scaler():
    source = (
        "import torch\nmodel = Net()\noptimizer = model.configure_optimizers()\nscaler = torch.cuda.amp.GradScaler()\n"
        + LOOP.format(step="scaler.step(optimizer)")
    )
    assert roles(source) == {"model": MODEL, "optimizer": OPTIMIZER}


def test_things_that_step_but_are_no_optimizer():
    cases = {
        # an environment steps with an action
        "env = make_env(model)\n": "env.step(0)",
        # a scheduler is made from an optimizer
        "optimizer = torch.optim.SGD(model.parameters(), lr=0.1)\nscheduler = make_scheduler(optimizer, model)\n": "scheduler.step()",
        # a torch class of another kind
        "scaler = torch.cuda.amp.GradScaler()\n": "scaler.step()",
        # no backward in the loop
    }
    for made, step in cases.items():
        source = "import torch\nmodel = torch.nn.Linear(2, 1)\n" + made + LOOP.format(step=step)
        found = roles(source)
        stepped = step.split(".")[0]
        assert found.get(stepped) != OPTIMIZER, (made, found)
    no_backward = "import torch\nmodel = Net()\nopt = model.configure_optimizers()\nfor x in loader:\n    opt.step()\n"
    assert "opt" not in roles(no_backward)


def test_an_optimizer_made_from_no_model_stays_unknown():
    source = "import torch\nmodel = Net()\noptimizer = build_optimizer(cfg)\n" + LOOP.format(step="optimizer.step()")
    assert "optimizer" not in roles(source)


def test_an_optimizer_made_from_a_model_the_loop_does_not_call_stays_unknown():
    source = (
        "import torch\nmodel = GPT(config)\nother = GPT(config)\n"
        "optimizer = other.configure_optimizers()\n" + LOOP.format(step="optimizer.step()")
    )
    assert "optimizer" not in roles(source)


def test_an_optimizer_made_from_the_unwrapped_view_steps_the_wrapped_model():
    # nanoGPT's `raw_model.configure_optimizers(...)` while the loop trains `model`: the model behind the view
    source = (
        "import torch\nmodel = GPT(config)\nraw_model = model.module if ddp else model\n"
        "optimizer = raw_model.configure_optimizers()\n" + LOOP.format(step="optimizer.step()")
    )
    assert roles(source) == {"model": MODEL, "optimizer": OPTIMIZER}
    for view in ("model.module", 'getattr(model, "module", model)', "model if not ddp else model.module"):
        assert roles(source.replace("model.module if ddp else model", view)) == {"model": MODEL, "optimizer": OPTIMIZER}, view