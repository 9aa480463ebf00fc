"""Each rule on small inputs: the exact output, and the diagnostics where a rule declines."""

from __future__ import annotations

import pytest

from accel_convert.convert import convert_source

CASES = [
    pytest.param(
        # AC004: any expression, keyword arguments kept, torch.autograd.backward untouched; helpers get the accelerator (keyword-only after defaults)
        '''\
import torch
from torch.utils.data import DataLoader


def step(model, batch, optimizer, scale=1.0):
    out = model(batch)
    (out.sum() * scale).backward(retain_graph=True)
    torch.autograd.backward(out.mean())
    optimizer.step()


def epoch(model, loader, optimizer):
    for batch in loader:
        step(model, batch, optimizer)


def main():
    loader = DataLoader(range(8), batch_size=2)
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):
        epoch(model, loader, optimizer)
''',
        '''\
import torch
from torch.utils.data import DataLoader
from accel import Accelerator


def step(model, batch, optimizer, scale=1.0, *, accelerator):
    out = model(batch)
    accelerator.backward(out.sum() * scale, retain_graph=True)
    torch.autograd.backward(out.mean())
    optimizer.step()


def epoch(model, loader, optimizer, accelerator):
    for batch in loader:
        step(model, batch, optimizer, accelerator=accelerator)


def main():
    accelerator = Accelerator()
    loader = DataLoader(range(8), batch_size=2)
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    for _ in range(2):
        epoch(model, loader, optimizer, accelerator)
''',
        [],
        id='backward_helper',
    ),
    pytest.param(
        # AC003: .cuda()/.to('cuda') dropped from model and batches, `if use_cuda:` blocks and the flag removed, other moves retargeted, dtype and cpu moves kept
        '''\
import torch
from torch.utils.data import DataLoader

use_cuda = torch.cuda.is_available()
loader = DataLoader(data)
model = torch.nn.Linear(4, 2)
if use_cuda:
    model = model.cuda()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
criterion = torch.nn.CrossEntropyLoss().cuda()
for x, y in loader:
    if use_cuda:
        x, y = x.cuda(non_blocking=True), y.cuda(non_blocking=True)
    x = x.to("cuda", torch.float16)
    mask = torch.ones(4, device="cuda")
    cpu_copy = x.to("cpu")
    half = x.to(torch.float16)
    loss = criterion(model(x * mask), y)
    loss.backward()
    optimizer.step()
''',
        '''\
import torch
from torch.utils.data import DataLoader
from accel import Accelerator

accelerator = Accelerator()
loader = DataLoader(data)
model = torch.nn.Linear(4, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
criterion = torch.nn.CrossEntropyLoss().to(accelerator.device)
for x, y in loader:
    x = x.to(torch.float16)
    mask = torch.ones(4, device=accelerator.device)
    cpu_copy = x.to("cpu")
    half = x.to(torch.float16)
    loss = criterion(model(x * mask), y)
    accelerator.backward(loss)
    optimizer.step()
''',
        [],
        id='moves',
    ),
    pytest.param(
        # AC002: per-step scheduler prepared, per-epoch one not; DistributedSampler replaced by shuffle
        '''\
import torch
from torch.utils.data import DataLoader, DistributedSampler


def main():
    sampler = DistributedSampler(data, shuffle=True)
    loader = DataLoader(data, batch_size=4, sampler=sampler)
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    per_step = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1.0, total_steps=100)
    per_epoch = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        for x, y in loader:
            loss = model(x).sum()
            loss.backward()
            optimizer.step()
            per_step.step()
        per_epoch.step()
''',
        '''\
import torch
from torch.utils.data import DataLoader
from accel import Accelerator


def main():
    accelerator = Accelerator()
    loader = DataLoader(data, batch_size=4, shuffle=True)
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    per_step = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1.0, total_steps=100)
    model, optimizer, loader, per_step = accelerator.prepare(model, optimizer, loader, per_step)
    per_epoch = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)
    for epoch in range(3):
        for x, y in loader:
            loss = model(x).sum()
            accelerator.backward(loss)
            optimizer.step()
            per_step.step()
        per_epoch.step()
''',
        [],
        id='schedulers',
    ),
    pytest.param(
        # AC002 declines when a loop uses the objects before the last one is created; the backward calls stay
        '''\
import torch
from torch.utils.data import DataLoader

model = torch.nn.Linear(4, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for x in DataLoader(data):
    model(x).sum().backward()
    optimizer.step()
loader = DataLoader(data)
for x in loader:
    model(x).sum().backward()
    optimizer.step()
''',
        '''\
import torch
from torch.utils.data import DataLoader
from accel import Accelerator

accelerator = Accelerator()
model = torch.nn.Linear(4, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for x in DataLoader(data):
    model(x).sum().backward()
    optimizer.step()
loader = DataLoader(data)
for x in loader:
    model(x).sum().backward()
    optimizer.step()
''',
        [
            'x.py:6:1: AC002 `accelerator.prepare` not added: this loop uses `model` before `loader` (the last object prepare takes) is created, so the prepare would come after it; create `loader` before this loop to convert the script (every device move, `backward` and metric is left as it is)',
            'x.py:7:5: AC004 `model(x).sum().backward()` left as is: `accelerator.prepare` is not added (see AC002), and `accelerator.backward` needs the prepared optimizer',
            'x.py:11:5: AC004 `model(x).sum().backward()` left as is: `accelerator.prepare` is not added (see AC002), and `accelerator.backward` needs the prepared optimizer',
        ],
        id='late_objects',
    ),
    pytest.param(
        # AC001: a module-level device puts the accelerator at module level
        '''\
import argparse

import torch
from torch.utils.data import DataLoader

device = "cuda" if torch.cuda.is_available() else "cpu"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cpu", action="store_true")
    args = parser.parse_args()
    loader = DataLoader(data)
    model = torch.nn.Linear(4, 2).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        model(x).sum().backward()
        optimizer.step()
''',
        '''\
import argparse

import torch
from torch.utils.data import DataLoader
from accel import Accelerator

accelerator = Accelerator()
device = accelerator.device.type


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cpu", action="store_true")
    args = parser.parse_args()
    loader = DataLoader(data)
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    for x, y in loader:
        accelerator.backward(model(x).sum())
        optimizer.step()
''',
        [],
        id='module_device',
    ),
    pytest.param(
        # AC001: cpu= from the user's switch; a second run the accelerator cannot reach is reported, not guessed (and
        # keeps its own device moves: nothing prepares its model)
        '''\
import torch
from torch.utils.data import DataLoader


def main(args):
    args.cuda = not args.no_cuda and torch.cuda.is_available()
    device = torch.device("cuda" if args.cuda else "cpu")
    loader = DataLoader(data)
    model = torch.nn.Linear(4, 2).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for x in loader:
        model(x.to(device)).sum().backward()
        optimizer.step()


def run(opts):
    device = "cpu" if opts.cpu else "cuda"
    model = torch.nn.Linear(4, 2).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    while True:
        model(torch.ones(4, device=device)).sum().backward()
        optimizer.step()
''',
        '''\
import torch
from torch.utils.data import DataLoader
from accel import Accelerator


def main(args):
    args.cuda = not args.no_cuda and torch.cuda.is_available()
    accelerator = Accelerator(cpu=args.no_cuda)
    device = accelerator.device
    loader = DataLoader(data)
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    for x in loader:
        accelerator.backward(model(x).sum())
        optimizer.step()


def run(opts):
    device = "cpu" if opts.cpu else "cuda"
    model = torch.nn.Linear(4, 2).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    while True:
        model(torch.ones(4, device=device)).sum().backward()
        optimizer.step()
''',
        ['x.py:17:5: AC001 device `device` left as is: `run` cannot reach the accelerator', 'x.py:21:9: AC004 `model(torch.ones(4, device=device)).sum().backward()` left as is: it trains `model`, which `accelerator.prepare` does not hold; prepare it to train it with the accelerator'],
        id='cpu_flags',
    ),
    pytest.param(
        # AC017 removes a hand-written DataParallel wrapper (and the `if` left empty): the model is prepared instead
        '''\
import torch
from torch.utils.data import DataLoader

device = "cuda" if torch.cuda.is_available() else "cpu"
loader = DataLoader(data)
net = torch.nn.Linear(4, 2).to(device)
if device == "cuda":
    net = torch.nn.DataParallel(net)
optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
for x in loader:
    net(x.to(device)).sum().backward()
    optimizer.step()
''',
        '''\
import torch
from torch.utils.data import DataLoader
from accel import Accelerator

accelerator = Accelerator()
device = accelerator.device.type
loader = DataLoader(data)
net = torch.nn.Linear(4, 2)
optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
net, optimizer, loader = accelerator.prepare(net, optimizer, loader)
for x in loader:
    accelerator.backward(net(x).sum())
    optimizer.step()
''',
        [],
        id='wrapped_model',
    ),
    pytest.param(
        # an optimizer known by its use: made by a method of the model, stepped after a backward in the loop; the
        # GradScaler never scales a loss, so the script stays in full precision (a note says so)
        '''\
import torch

model = build_model()
optimizer = model.configure_optimizers()
scaler = torch.cuda.amp.GradScaler()
for step in range(10):
    loss = model(get_batch())
    loss.backward()
    optimizer.step()
''',
        '''\
import torch
from accel import Accelerator

accelerator = Accelerator()
model = build_model()
optimizer = model.configure_optimizers()
model, optimizer = accelerator.prepare(model, optimizer)
scaler = torch.cuda.amp.GradScaler()
for step in range(10):
    loss = model(get_batch())
    accelerator.backward(loss)
    optimizer.step()
''',
        ['x.py:5:1: AC014 `GradScaler` left as is: it never scales a loss and nothing runs under autocast, so the script trains in full precision, as the converted one does'],
        id='optimizer_from_model_method',
    ),
    pytest.param(
        # an object stepped after a backward but made from no model: nothing changes, and the diagnostic says why
        '''\
import torch

model = build_model()
optimizer = build_optimizer(config)
for step in range(10):
    loss = model(get_batch())
    loss.backward()
    optimizer.step()
''',
        '''\
import torch

model = build_model()
optimizer = build_optimizer(config)
for step in range(10):
    loss = model(get_batch())
    loss.backward()
    optimizer.step()
''',
        ['x.py:7:5: AC001 training loop not recognised: `optimizer` comes from `build_optimizer(...)`, not from a `torch.optim` class created in this file, so the converter cannot tell it is an optimizer; nothing converted'],
        id='unrecognised',
    ),
    pytest.param(
        # AC014: the scaler and autocast become the accelerator's fp16 (scaler.step(optimizer) counts as stepping the optimizer)
        '''\
import torch
from torch.utils.data import DataLoader

loader = DataLoader(data)
model = torch.nn.Linear(4, 2).cuda()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
scaler = torch.cuda.amp.GradScaler()
for x in loader:
    with torch.autocast("cuda"):
        loss = model(x.cuda()).sum()
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
''',
        '''\
import torch
from torch.utils.data import DataLoader
from accel import Accelerator

accelerator = Accelerator(mixed_precision="fp16")
loader = DataLoader(data)
model = torch.nn.Linear(4, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
for x in loader:
    with accelerator.autocast():
        loss = model(x).sum()
    accelerator.backward(loss)
    optimizer.step()
''',
        [],
        id='amp_scaler',
    ),
]


@pytest.mark.parametrize(("before", "after", "diagnostics"), CASES)
def test_rule_output(before, after, diagnostics):
    result = convert_source(before)
    assert result.text == after
    assert [d.format("x.py") for d in result.diagnostics] == diagnostics
    assert convert_source(after).text == after  # idempotent
