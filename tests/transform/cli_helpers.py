"""Shared inputs and helpers for the accel-convert command-line tests."""

from __future__ import annotations

import os
import subprocess
import sys

from click.testing import CliRunner

from accel_convert.model import Options
from accel_convert.shell.cli import main

# converts with no diagnostic: the command exits 0 in place
TRAIN = """\
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

model = nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
loader = DataLoader(TensorDataset(torch.randn(32, 4), torch.randn(32, 1)), batch_size=8)
for x, y in loader:
    optimizer.zero_grad()
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    optimizer.step()
print(f"loss {loss.item():.4f}")
"""

# converts, with a diagnostic that leaves work (AC002 at line 7: the loop iterates a list, not a prepared loader)
UNPREPARED = """\
import torch
from torch import nn

model = nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
batches = [(torch.randn(8, 4), torch.randn(8, 1)) for _ in range(4)]
for x, y in batches:
    optimizer.zero_grad()
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    optimizer.step()
print(f"loss {loss.item():.4f}")
"""

PLAIN = 'import os\n\nprint("no training here", os.getcwd())\n'

SYNTAX_ERROR = "import torch\n\nloss.backward(\n"


def diagnostics(text: str, **options):
    from accel_convert.convert import convert_source

    return convert_source(text, Options(**options)).diagnostics


def converted(text: str, **options) -> str:
    """What the converter's API makes of ``text``: the CLI must produce exactly this."""
    from accel_convert.convert import convert_source

    return convert_source(text, Options(**options)).text


def changes(text: str, **options):
    from accel_convert.convert import convert_source

    return convert_source(text, Options(**options)).changes


def invoke(*args, input=None, env=None):
    """Run the command in this process (one job, so no worker processes)."""
    args = list(map(str, args))
    if not any(a == "-j" or a.startswith("--jobs") for a in args):
        args = ["-j", "1", *args]
    return CliRunner().invoke(main, args, input=input, env=env, catch_exceptions=False)


def run(*args, cwd=None, env=None, input=None, timeout=60):
    """Run ``python -m accel_convert`` in a subprocess (the real entry point, worker processes allowed)."""
    return subprocess.run(
        [sys.executable, "-m", "accel_convert", *map(str, args)],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        input=input,
        capture_output=True,
        timeout=timeout,
    )


def write(path, text: str | bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    return path


def work(result) -> list:
    """The diagnostics of a conversion that leave work; any note among them must be the one a device-free script
    gets (``Accelerator(cpu=True)``, covered by tests/transform/test_cpu_only.py)."""
    notes = [d for d in result.diagnostics if d.severity != "work"]
    assert all(d.code == "AC001" and d.message.startswith("`Accelerator(cpu=True)`") for d in notes), notes
    return [d for d in result.diagnostics if d.severity == "work"]
