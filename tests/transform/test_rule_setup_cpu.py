"""AC001 carries the script's own switch to the CPU over as ``Accelerator(cpu=...)``, written as a reader would,
and leaves out what only checks that an accelerator is there."""

import textwrap

import pytest

from accel_convert.convert import convert_source

TRAINING = """
model = nn.Linear(2, 1).to(device)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for x in [torch.randn(3, 2)]:
    loss = model(x.to(device)).sum()
    loss.backward()
    optimizer.step()
"""

HEADER = """
import argparse
import torch
import torch.nn as nn
parser = argparse.ArgumentParser()
args = parser.parse_args()
"""

CASES = {
    "option compared": (
        'device = torch.device("cuda" if args.backend == "gpu" and torch.cuda.is_available() else "cpu")',
        'Accelerator(cpu=args.backend != "gpu")',
    ),
    "membership": (
        'device = "cuda" if args.mode in ("gpu", "cuda") and torch.cuda.is_available() else "cpu"',
        'Accelerator(cpu=args.mode not in ("gpu", "cuda"))',
    ),
    "negated switch": (
        'device = "cuda" if not args.no_cuda and torch.cuda.is_available() else "cpu"',
        "Accelerator(cpu=args.no_cuda)",
    ),
    "either of two switches": (
        'device = "cuda" if (args.gpu or args.fast) and torch.cuda.is_available() else "cpu"',
        "Accelerator(cpu=not (args.gpu or args.fast))",
    ),
    "availability only, spelled as a ternary flag": (
        'gpu = True if torch.cuda.is_available() else False\ndevice = torch.device("cuda" if gpu else "cpu")',
        "Accelerator()",
    ),
    "cpu set again under a switch": (
        'device = torch.device("cuda" if torch.cuda.is_available() else "cpu")\n'
        'if args.cpu or args.debug:\n    device = torch.device("cpu")',
        "Accelerator(cpu=args.cpu or args.debug)",
    ),
    "if/elif/else chain": (
        'if args.cpu:\n    device = "cpu"\nelif torch.cuda.is_available():\n    device = "cuda"\n'
        'elif torch.backends.mps.is_available():\n    device = "mps"\nelse:\n    device = "cpu"',
        "Accelerator(cpu=args.cpu)",
    ),
}


def _accelerator_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if "= Accelerator(" in line]


@pytest.mark.parametrize("definition, expected", CASES.values(), ids=CASES.keys())
def test_the_cpu_switch_is_carried_over_readably(definition, expected):
    result = convert_source(HEADER + definition + "\n" + TRAINING)
    assert _accelerator_lines(result.text) == [f"accelerator = {expected}"]


def test_a_default_replaced_under_the_main_guard_leaves_the_accelerator_to_the_later_definition():
    source = textwrap.dedent(
        """
        import argparse
        import torch
        import torch.nn as nn
        DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")

        def train(model, optimizer):
            for x in [torch.randn(3, 2)]:
                loss = model(x.to(DEVICE)).sum()
                loss.backward()
                optimizer.step()

        if __name__ == "__main__":
            parser = argparse.ArgumentParser()
            args = parser.parse_args()
            DEVICE = torch.device("cuda" if args.backend == "gpu" and torch.cuda.is_available() else "cpu")
            model = nn.Linear(2, 1).to(DEVICE)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            train(model, optimizer)
        """
    )
    text = convert_source(source).text
    lines = text.splitlines()
    assert 'DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")' in lines
    creation = lines.index('    accelerator = Accelerator(cpu=args.backend != "gpu")')
    assert lines[creation - 1] == "    args = parser.parse_args()"
    assert lines[creation + 1] == "    DEVICE = accelerator.device"


def test_a_default_read_before_it_is_replaced_keeps_the_accelerator_there_with_the_later_switch():
    source = HEADER + textwrap.dedent(
        """
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        probe = torch.zeros(1).to(device)
        device = torch.device("cuda" if args.backend == "gpu" and torch.cuda.is_available() else "cpu")
        """
    ) + TRAINING
    lines = convert_source(source).text.splitlines()
    first = lines.index('accelerator = Accelerator(cpu=args.backend != "gpu")')
    assert lines[first + 1] == "device = accelerator.device"


@pytest.mark.parametrize(
    "statement",
    [
        "model = nn.parallel.DistributedDataParallel(model, device_ids=[0] if torch.cuda.is_available() else None)",
        "device_ids = [0] if torch.cuda.is_available() else None",
    ],
    ids=["wrapper call", "list chosen by a check"],
)
def test_a_value_chosen_by_an_availability_check_is_no_cpu_switch(statement):
    source = HEADER + 'device = torch.device("cuda" if torch.cuda.is_available() else "cpu")\n' + TRAINING
    source = source.replace("optimizer = torch.optim", statement + "\noptimizer = torch.optim")
    result = convert_source(source)
    assert _accelerator_lines(result.text) == ["accelerator = Accelerator()"]
    assert [d for d in result.diagnostics if d.code == "AC001"] == []
    if statement.startswith("device_ids"):
        assert statement in result.text.splitlines()


def test_a_cpu_default_upgraded_when_cuda_is_available_is_no_cpu_switch():
    # device = "cpu", then `if torch.cuda.is_available(): device = "cuda"` (elif mps...): the run uses the GPU
    source = (
        "import torch\nfrom torch.utils.data import DataLoader\ndevice = \"cpu\"\nif torch.cuda.is_available():\n"
        "    device = \"cuda\"\nelif torch.backends.mps.is_available():\n    device = \"mps\"\n"
        "model = torch.nn.Linear(2, 1).to(device)\noptimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "loader = DataLoader(torch.randn(8, 2), batch_size=2)\nfor x in loader:\n    optimizer.zero_grad()\n"
        "    model(x.to(device)).sum().backward()\n    optimizer.step()\n"
    )
    assert "accelerator = Accelerator()\n" in convert_source(source).text
    forced = source.replace("if torch.cuda.is_available():", "if args.gpu and torch.cuda.is_available():")
    assert "accelerator = Accelerator(cpu=not args.gpu)\n" in convert_source(forced).text
