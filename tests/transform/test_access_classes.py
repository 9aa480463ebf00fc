"""A class of the file whose methods need the accelerator (a Trainer handed the objects main() prepares) gets it as
an ``__init__`` parameter stored in ``self.accelerator``; classes that cannot be followed are left as they are."""

from __future__ import annotations

import pytest

from accel_convert.convert import convert_source
from accel_convert.model import Diagnostic
from tests.transform.cli_helpers import work

TRAINER = '''\
import torch


class Trainer:
    def __init__(self, model, optimizer):
        self.model = model
        self.optimizer = optimizer

    def run_batch(self, x):
        self.optimizer.zero_grad()
        loss = self.model(x).sum()
        loss.backward()
        return loss.item()


def main():
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = Trainer(model, optimizer)
    for x in torch.randn(4, 3, 2):
        print(f"loss {trainer.run_batch(x):.6f}")
        optimizer.step()
'''
INIT = "    def __init__(self, model, optimizer):\n        self.model = model\n        self.optimizer = optimizer\n"
RUN_BATCH = TRAINER[TRAINER.index("    def run_batch"):TRAINER.index("\n\n\ndef main")]


def test_trainer_built_in_main_gets_the_accelerator():
    result = convert_source(TRAINER)
    assert result.text == '''\
import torch
from accel import Accelerator


class Trainer:
    def __init__(self, model, optimizer, accelerator):
        self.accelerator = accelerator
        self.model = model
        self.optimizer = optimizer

    def run_batch(self, x):
        self.optimizer.zero_grad()
        loss = self.model(x).sum()
        self.accelerator.backward(loss)
        return loss.item()


def main():
    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer = accelerator.prepare(model, optimizer)
    trainer = Trainer(model, optimizer, accelerator=accelerator)
    for x in torch.randn(4, 3, 2):
        accelerator.print(f"loss {trainer.run_batch(x):.6f}")
        optimizer.step()
'''
    assert work(result) == []


def test_wrapper_module_save_and_print_go_through_self_accelerator():
    source = '''\
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader


class Trainer:
    def __init__(self, model, loader, optimizer):
        self.model = DDP(model)
        self.loader = loader
        self.optimizer = optimizer

    def run_batch(self, x, y):
        self.optimizer.zero_grad()
        loss = F.mse_loss(self.model(x), y)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def fit(self, epochs):
        for epoch in range(epochs):
            total = sum(self.run_batch(x, y) for x, y in self.loader)
            print(f"epoch {epoch} loss {total:.6f}")
        torch.save(self.model.module.state_dict(), "model.pt")


def main():
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(torch.randn(8, 2, 2), batch_size=2)
    Trainer(model, loader, optimizer).fit(2)
'''
    result = convert_source(source)
    assert result.text == '''\
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from accel import Accelerator


class Trainer:
    def __init__(self, model, loader, optimizer, accelerator):
        self.accelerator = accelerator
        self.model = model
        self.loader = loader
        self.optimizer = optimizer

    def run_batch(self, x, y):
        self.optimizer.zero_grad()
        loss = F.mse_loss(self.model(x), y)
        self.accelerator.backward(loss)
        self.optimizer.step()
        return loss.item()

    def fit(self, epochs):
        for epoch in range(epochs):
            total = sum(self.run_batch(x, y) for x, y in self.loader)
            self.accelerator.print(f"epoch {epoch} loss {total:.6f}")
        self.accelerator.save(self.accelerator.unwrap_model(self.model).state_dict(), "model.pt")


def main():
    accelerator = Accelerator()
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(torch.randn(8, 2, 2), batch_size=2)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    Trainer(model, loader, optimizer, accelerator=accelerator).fit(2)
'''
    assert work(result) == []


def test_keyword_only_after_defaults_and_docstring_through_a_helper():
    source = '''\
import torch


class Trainer:
    def __init__(self, model, optimizer, log_every=10):
        """Keeps the model and its optimizer."""
        self.model = model
        self.optimizer = optimizer
        self.log_every = log_every

    def run_batch(self, x):
        self.optimizer.zero_grad()
        self.model(x).sum().backward()
        self.optimizer.step()

    def fit(self, batches):
        for x in batches:
            self.run_batch(x)


def make_trainer(model, optimizer):
    return Trainer(model, optimizer, log_every=5)


def main():
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = make_trainer(model, optimizer)
    trainer.fit(torch.randn(4, 3, 2))
'''
    result = convert_source(source)
    assert result.text == '''\
import torch
from accel import Accelerator


class Trainer:
    def __init__(self, model, optimizer, log_every=10, *, accelerator):
        """Keeps the model and its optimizer."""
        self.accelerator = accelerator
        self.model = model
        self.optimizer = optimizer
        self.log_every = log_every

    def run_batch(self, x):
        self.optimizer.zero_grad()
        self.accelerator.backward(self.model(x).sum())
        self.optimizer.step()

    def fit(self, batches):
        for x in batches:
            self.run_batch(x)


def make_trainer(model, optimizer, accelerator):
    return Trainer(model, optimizer, log_every=5, accelerator=accelerator)


def main():
    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer = accelerator.prepare(model, optimizer)
    trainer = make_trainer(model, optimizer, accelerator)
    trainer.fit(torch.randn(4, 3, 2))
'''
    assert work(result) == []


def test_one_parameter_a_line_signature_gets_its_own_line():
    source = TRAINER.replace("    def __init__(self, model, optimizer):", "    def __init__(\n        self,\n        model,\n        optimizer,\n    ):")
    assert (
        "    def __init__(\n        self,\n        model,\n        optimizer,\n        accelerator,\n    ):\n"
        "        self.accelerator = accelerator\n"
    ) in convert_source(source).text


def test_closure_in_a_method_and_a_home_that_is_another_class():
    source = '''\
import torch


class Stepper:
    def __init__(self, model, optimizer):
        self.model = model
        self.optimizer = optimizer

    def fit(self, batches):
        for x in batches:
            def closure():
                self.optimizer.zero_grad()
                loss = self.model(x).sum()
                loss.backward()
                return loss

            self.optimizer.step(closure)


class Runner:
    def run(self):
        self.model = torch.nn.Linear(2, 1)
        self.optimizer = torch.optim.LBFGS(self.model.parameters(), lr=0.1)
        stepper = Stepper(self.model, self.optimizer)
        stepper.fit([torch.randn(3, 2)])
'''
    text = convert_source(source).text
    assert "                self.accelerator.backward(loss)\n" in text
    assert "    def __init__(self, model, optimizer, accelerator):\n        self.accelerator = accelerator\n" in text
    assert "        stepper = Stepper(self.model, self.optimizer, accelerator=self.accelerator)\n" in text


UNREACHABLE = "`loss.backward()` left as is: `run_batch` cannot reach the accelerator"


@pytest.mark.parametrize(
    ("source", "line"),
    [
        pytest.param(
            TRAINER.replace("\n\ndef main():", "\n\nclass LoggingTrainer(Trainer):\n    pass\n\n\ndef main():").replace(
                "trainer = Trainer(", "trainer = LoggingTrainer("
            ),
            12,
            id="subclassed",
        ),
        pytest.param(
            TRAINER.replace("    trainer = Trainer(model, optimizer)\n", "    trainer.model, trainer.optimizer = model, optimizer\n").replace(
                "def main():", "trainer = Trainer(None, None)\n\n\ndef main():"
            ),
            12,
            id="built-at-module-level",
        ),
        pytest.param(
            TRAINER.replace("    def run_batch", "    @classmethod\n    def create(cls, model, optimizer):\n        return cls(model, optimizer)\n\n    def run_batch"),
            16,
            id="classmethod-constructor",
        ),
        pytest.param(
            TRAINER.replace("class Trainer:", "@functools.total_ordering\nclass Trainer:").replace("import torch\n", "import functools\n\nimport torch\n", 1),
            15,
            id="decorated",
        ),
        pytest.param(
            TRAINER.replace("    trainer = Trainer(model, optimizer)\n", "    trainer = TRAINERS['default'](model, optimizer)\n").replace(
                "def main():", "TRAINERS = {'default': Trainer}\n\n\ndef main():"
            ),
            12,
            id="class-used-as-a-value",
        ),
    ],
)
def test_classes_that_cannot_be_followed_stay_untouched(source, line):
    result = convert_source(source)
    assert INIT in result.text and RUN_BATCH in result.text  # the methods as written: no parameter, no attribute
    assert "self.accelerator" not in result.text
    assert work(result) == [Diagnostic("AC004", line, 9, UNREACHABLE)]


def test_module_of_a_removed_wrapper_that_cannot_be_unwrapped_is_reported():
    source = TRAINER.replace("self.model = model", "self.model = DDP(model)").replace(
        "import torch\n", "import torch\nfrom torch.nn.parallel import DistributedDataParallel as DDP\n"
    ).replace("        return loss.item()\n", "        return loss.item()\n\n    def save(self, path):\n        torch.save(self.model.module.state_dict(), path)\n").replace(
        "    def run_batch", "    @classmethod\n    def create(cls, model, optimizer):\n        return cls(model, optimizer)\n\n    def run_batch"
    )
    result = convert_source(source)
    assert "        self.model = model\n" in result.text  # AC017 removed the wrapper
    assert "        torch.save(self.model.module.state_dict(), path)\n" in result.text
    assert list(result.diagnostics) == [
        Diagnostic("AC004", 17, 9, UNREACHABLE),
        Diagnostic(
            "AC016",
            21,
            20,
            "`self.model.module` left as is: `save` cannot reach the accelerator to read "
            "`accelerator.unwrap_model(self.model)` instead; a prepared model run in one process has no `.module`",
        ),
    ]


def test_annotations_and_super_do_not_stop_the_hand_over():
    source = TRAINER.replace("class Trainer:", "class Trainer(object):").replace(
        "        self.model = model\n", "        super(Trainer, self).__init__()\n        self.model = model\n"
    ).replace("    trainer = Trainer(model, optimizer)\n", "    trainer: Trainer = Trainer(model, optimizer)\n")
    text = convert_source(source).text
    assert "    def __init__(self, model, optimizer, accelerator):\n        self.accelerator = accelerator\n" in text
    assert "    trainer: Trainer = Trainer(model, optimizer, accelerator=accelerator)\n" in text


KWARGS_TRAINER = '''\
import torch
from torch.utils.data import DataLoader, TensorDataset


class Trainer(object):
    def __init__(self, *args, **kwargs):
        self.args = kwargs["args"]
        self.model = kwargs["model"].to(self.args.device)
        self.optimizer = kwargs["optimizer"]

    def train(self, train_loader):
        for epoch in range(2):
            for x, y in train_loader:
                x, y = x.to(self.args.device), y.to(self.args.device)
                loss = torch.nn.functional.mse_loss(self.model(x), y)
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
            print(f"epoch {epoch} loss {loss.item():.4f}")


class Args:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def main():
    args = Args()
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(TensorDataset(torch.randn(32, 4), torch.randn(32, 1)), batch_size=8)
    trainer = Trainer(model=model, optimizer=optimizer, args=args)
    trainer.train(loader)


main()
'''


def test_a_trainer_given_its_objects_through_kwargs_trains_the_prepared_ones():
    result = convert_source(KWARGS_TRAINER)
    text = result.text
    # the model and optimizer that main() prepares reach Trainer through kwargs["model"], kwargs["optimizer"]
    assert "    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)\n" in text, text
    assert "                accelerator.backward(loss)\n" in text  # the module-level accelerator (see below)
    assert "            accelerator.print(f\"epoch {epoch} loss {loss.item():.4f}\")\n" in text
    assert not [d for d in result.diagnostics if d.severity == "work"], result.diagnostics


def test_a_device_defined_in_a_class_body_gets_the_accelerator_before_the_class():
    text = convert_source(KWARGS_TRAINER).text
    assert "\naccelerator = Accelerator()\nclass Args:\n    device = accelerator.device\n" in text, text
    compile(text, "after.py", "exec")


def test_a_trainer_given_its_objects_through_kwargs_gets_the_accelerator_as_a_keyword():
    source = KWARGS_TRAINER.replace(
        'class Args:\n    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")\n', "class Args:\n    pass\n"
    ).replace("    args = Args()\n", '    args = Args()\n    args.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")\n')
    text = convert_source(source).text
    assert "    def __init__(self, *args, accelerator, **kwargs):\n        self.accelerator = accelerator\n" in text, text
    assert "                self.accelerator.backward(loss)\n" in text
    assert "    trainer = Trainer(model=model, optimizer=optimizer, args=args, accelerator=accelerator)\n" in text
