"""AC017 hand-written-ddp on small inputs: the exact output, the diagnostics where it declines, idempotence."""

from __future__ import annotations

import pytest

from accel_convert.convert import convert_source
from accel_convert.model import Options
from tests.transform.cli_helpers import work

ENVIRONMENT = '''\
import os

import torch
from torch.nn.parallel import DistributedDataParallel


def main():
    rank = int(os.environ.get("RANK", 0))
    local_rank = int(os.getenv("LOCAL_RANK", "0"))
    model = torch.nn.Linear(2, 1)
    ddp_model = DistributedDataParallel(model, device_ids=[local_rank])
    optimizer = torch.optim.SGD(ddp_model.parameters(), lr=0.1)
    for x in torch.randn(4, 3, 2):
        optimizer.zero_grad()
        ddp_model(x).sum().backward()
        optimizer.step()
        if local_rank in [-1, 0] and rank == 0:
            print("step")
    if rank == 1:
        print("rank one")
    print(torch.nn.DataParallel(model))
'''
SPAWN = '''\
import os

import torch
import torch.multiprocessing as mp


def log_rank():
    print(int(os.environ["RANK"]))


def run(rank, steps):
    model = torch.nn.Linear(2, 1)
    model = torch.nn.parallel.DistributedDataParallel(model).cpu()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for x in torch.randn(steps, 3, 2):
        optimizer.zero_grad()
        model(x).sum().backward()
        optimizer.step()
    log_rank()


if __name__ == "__main__":
    os.environ["MASTER_PORT"] = "12355"
    mp.spawn(run, args=(4,), nprocs=2)
    mp.spawn(run, (4,), 2, True, None, "spawn")
'''

SETUP_HELPER = '''\
import os

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler


def setup():
    torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl")


def main(data):
    setup()
    loader = DataLoader(data, shuffle=False, batch_size=2, sampler=DistributedSampler(data))
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for x in loader:
        optimizer.zero_grad()
        model(x).sum().backward()
        optimizer.step()
'''

LOCAL_RANK_OPTION = '''\
import argparse

import torch


def train(args, model, loader, optimizer):
    for x in loader:
        optimizer.zero_grad()
        model(x).sum().backward()
        optimizer.step()
        if args.local_rank in [-1, 0]:
            print("step")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--local_rank", type=int, default=-1)
    args = parser.parse_args()
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = torch.utils.data.DataLoader(torch.randn(4, 2))
    train(args, model, loader, optimizer)
    if args.local_rank == -1 or args.local_rank == 0:
        torch.save(model.state_dict(), "model.pt")
'''

APEX_LAUNCH = '''\
import argparse
import os

import torch
from apex.parallel import DistributedDataParallel

parser = argparse.ArgumentParser()
parser.add_argument("--local_rank", default=0, type=int)
args = parser.parse_args()
args.distributed = False
if "WORLD_SIZE" in os.environ:
    args.distributed = int(os.environ["WORLD_SIZE"]) > 1
if args.distributed:
    torch.cuda.set_device(args.local_rank)
    torch.distributed.init_process_group(backend="nccl", init_method="env://")

x = torch.randn(8, 4, device="cuda")
model = torch.nn.Linear(4, 2).cuda()
optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
if args.distributed:
    model = DistributedDataParallel(model)
for t in range(5):
    optimizer.zero_grad()
    loss = model(x).sum()
    loss.backward()
    optimizer.step()
if args.local_rank == 0:
    print("final loss", loss)
'''

UNREACHABLE_READ = '''\
import os

import torch


class Trainer:
    def __init__(self, model, optimizer):
        self.rank = int(os.environ["RANK"])
        self.model = model
        self.optimizer = optimizer


TRAINERS = {"default": Trainer}


def main():
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = TRAINERS["default"](model, optimizer)
    for x in torch.randn(4, 3, 2):
        optimizer.zero_grad()
        model(x).sum().backward()
        optimizer.step()
    if trainer.rank == 0:
        print("done")
'''

TRAINER_WRAPPER = '''\
import torch
from torch.nn.parallel import DistributedDataParallel as DDP


class Trainer:
    def __init__(self, model, optimizer):
        self.model = model.to(0)
        self.model = DDP(self.model, device_ids=[0])
        self.optimizer = optimizer


def main():
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = Trainer(model, optimizer)
    for x in torch.randn(4, 3, 2):
        optimizer.zero_grad()
        model(x).sum().backward()
        optimizer.step()
'''

CASES = [
    pytest.param(
        # ranks read from the environment (os.environ.get, os.getenv), rank-0 guards joined by `and`, a wrapper
        # under another name; a guard on another rank and a wrapper that is not assigned are kept
        ENVIRONMENT,
        '''\

import torch
from accel import Accelerator


def main():
    accelerator = Accelerator()
    rank = accelerator.process_index
    local_rank = accelerator.local_process_index
    model = torch.nn.Linear(2, 1)
    ddp_model = model
    optimizer = torch.optim.SGD(ddp_model.parameters(), lr=0.1)
    ddp_model, optimizer = accelerator.prepare(ddp_model, optimizer)
    for x in torch.randn(4, 3, 2):
        optimizer.zero_grad()
        accelerator.backward(ddp_model(x).sum())
        optimizer.step()
        if accelerator.is_local_main_process and accelerator.is_main_process:
            accelerator.print("step")
    if rank == 1:
        accelerator.print("rank one")
    accelerator.print(torch.nn.DataParallel(model))
''',
        [
            '21: AC017 `DataParallel` wraps the model by hand; remove it: `accelerator.prepare` distributes the model',
        ],
        id="environment-guards-wrapper",
    ),
    pytest.param(
        # mp.spawn -> one call with the launcher's rank, MASTER_PORT set by hand removed; a helper gets the accelerator
        # for its rank read; a wrapper followed by .cpu() and a spawn with positional options are reported and kept
        SPAWN,
        '''\
import os

import torch
import torch.multiprocessing as mp
from accel import Accelerator


def log_rank(accelerator):
    accelerator.print(accelerator.process_index)


def run(rank, steps):
    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(2, 1)
    model = torch.nn.parallel.DistributedDataParallel(model).cpu()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer = accelerator.prepare(model, optimizer)
    for x in torch.randn(steps, 3, 2):
        optimizer.zero_grad()
        accelerator.backward(model(x).sum())
        optimizer.step()
    log_rank(accelerator)


if __name__ == "__main__":
    run(int(os.environ.get("RANK", 0)), 4)
    mp.spawn(run, (4,), 2, True, None, "spawn")
''',
        [
            '13: AC017 `DistributedDataParallel` wraps the model by hand; remove it: `accelerator.prepare` distributes the model',
            '25: AC017 `mp.spawn` left as is: the launcher starts the processes; call the function once instead',
        ],
        id="spawn-rendezvous",
    ),
    pytest.param(
        # a rank read inside the set_device line AC016 removes gives the helper no accelerator parameter; the
        # loader's own shuffle=False gives way to the sampler's (default) shuffle instead of being repeated
        SETUP_HELPER,
        '''\

import torch
from torch.utils.data import DataLoader
from accel import Accelerator


def setup():
    pass


def main(data):
    setup()
    accelerator = Accelerator()
    loader = DataLoader(data, batch_size=2, shuffle=True)
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    for x in loader:
        optimizer.zero_grad()
        accelerator.backward(model(x).sum())
        optimizer.step()
''',
        [],
        id="setup-helper-sampler-shuffle",
    ),
    pytest.param(
        # the --local_rank option of torch.distributed.launch: under accel launch every process would see -1, so
        # `args.local_rank in [-1, 0]` and `args.local_rank == -1 or args.local_rank == 0` select the local main process
        LOCAL_RANK_OPTION,
        '''\
import argparse

import torch
from accel import Accelerator


def train(args, model, loader, optimizer, accelerator):
    for x in loader:
        optimizer.zero_grad()
        accelerator.backward(model(x).sum())
        optimizer.step()
        if accelerator.is_local_main_process:
            accelerator.print("step")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--local_rank", type=int, default=-1)
    args = parser.parse_args()
    accelerator = Accelerator()
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = torch.utils.data.DataLoader(torch.randn(4, 2))
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    train(args, model, loader, optimizer, accelerator)
    if accelerator.is_local_main_process:
        accelerator.save(accelerator.unwrap_model(model).state_dict(), "model.pt")
''',
        [],
        id="local-rank-option",
    ),
    pytest.param(
        # the apex example's shape: module level, WORLD_SIZE read under a check, setup and apex's wrapper under
        # `if args.distributed:` (both ifs go once empty), a `--local_rank` guard
        APEX_LAUNCH,
        '''\
import argparse
import os

import torch
from accel import Accelerator

parser = argparse.ArgumentParser()
parser.add_argument("--local_rank", default=0, type=int)
args = parser.parse_args()
args.distributed = False
accelerator = Accelerator()
if "WORLD_SIZE" in os.environ:
    args.distributed = accelerator.num_processes > 1

x = torch.randn(8, 4, device=accelerator.device)
model = torch.nn.Linear(4, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
model, optimizer = accelerator.prepare(model, optimizer)
for t in range(5):
    optimizer.zero_grad()
    loss = model(x).sum()
    accelerator.backward(loss)
    optimizer.step()
if accelerator.is_local_main_process:
    accelerator.print("final loss", loss)
''',
        [],
        id="apex-module-level",
    ),
    pytest.param(
        # a rank read in a method that cannot reach the accelerator (its class is looked up in a table, not
        # constructed by name, so it cannot be handed the accelerator) keeps reading the environment, with the
        # value it has without a launcher as default, so that `python script.py` still runs
        UNREACHABLE_READ,
        '''\
import os

import torch
from accel import Accelerator


class Trainer:
    def __init__(self, model, optimizer):
        self.rank = int(os.environ.get("RANK", "0"))
        self.model = model
        self.optimizer = optimizer


TRAINERS = {"default": Trainer}


def main():
    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer = accelerator.prepare(model, optimizer)
    trainer = TRAINERS["default"](model, optimizer)
    for x in torch.randn(4, 3, 2):
        optimizer.zero_grad()
        accelerator.backward(model(x).sum())
        optimizer.step()
    if trainer.rank == 0:
        accelerator.print("done")
''',
        [
            '8: AC017 `os.environ["RANK"]` -> `os.environ.get("RANK", "0")` (the value without a launcher), not the accelerator\'s: `__init__` cannot reach it',
        ],
        id="unreachable-read-default",
    ),
    pytest.param(
        # a trainer that wraps the model it was given (the ddp-tutorial-series shape): the attribute holds a model
        TRAINER_WRAPPER,
        '''\
import torch
from accel import Accelerator


class Trainer:
    def __init__(self, model, optimizer):
        self.model = model
        self.optimizer = optimizer


def main():
    accelerator = Accelerator()
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer = accelerator.prepare(model, optimizer)
    trainer = Trainer(model, optimizer)
    for x in torch.randn(4, 3, 2):
        optimizer.zero_grad()
        accelerator.backward(model(x).sum())
        optimizer.step()
''',
        [],
        id="trainer-wrapper",
    ),
]


@pytest.mark.parametrize(("before", "after", "diagnostics"), CASES)
def test_hand_written_ddp(before, after, diagnostics):
    result = convert_source(before)
    assert result.text == after
    assert [f"{d.line}: {d.code} {d.message}" for d in work(result)] == diagnostics
    assert convert_source(result.text).text == result.text


def test_ignoring_the_rule_keeps_the_hand_written_pieces():
    result = convert_source(ENVIRONMENT, Options(ignore=frozenset({"AC017"})))
    assert 'rank = int(os.environ.get("RANK", 0))' in result.text
    assert "ddp_model = DistributedDataParallel(model, device_ids=[local_rank])" in result.text
    assert "if local_rank in [-1, 0] and rank == 0:" in result.text
    assert not [change for change in result.changes if change.code == "AC017"]
