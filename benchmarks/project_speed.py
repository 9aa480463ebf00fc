"""How fast project mode is: `accel-convert --check DIR` on a generated 50-file project, on one core.

The project is written by this script (our own code, in the shape of a research codebase): an entry script and an
engine module that form one training run, a utils module, a models/ package of model classes, a data/ package of
datasets, an optimizer factory and plain helper modules. Side by side in one run:

* project mode: ``accel-convert --check -j 1 DIR`` (groups found, the run converted as one);
* file by file: ``accel-convert --check -j 1 FILE`` on each file alone, summed (what project mode replaces);
* in-process: the grouping step alone and the whole project conversion (``convert_project``), files read beforehand.

Target (issue 10): project mode on a 50-file project in under 2 s on one core.

Usage: python benchmarks/project_speed.py [--files 50] [--repeat 7] [--out benchmarks/results/project_speed.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

ENTRY = '''"""Entry script."""
import argparse

import torch
from torch.utils.data import DataLoader

from data.dataset_0 import Dataset0
from engine import evaluate, train_one_epoch
from factory import build_optimizer
from models.model_0 import Model0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train_loader = DataLoader(Dataset0(64), batch_size=8, shuffle=True)
    val_loader = DataLoader(Dataset0(32), batch_size=8)
    model = Model0().to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for epoch in range(args.epochs):
        train_one_epoch(model, train_loader, optimizer, device, epoch)
        evaluate(model, val_loader, device)


if __name__ == "__main__":
    main()
'''

ENGINE = '''"""Loops."""
import torch
import torch.nn.functional as F


def train_one_epoch(model, loader, optimizer, device, epoch, max_norm=1.0):
    model.train()
    for inputs, targets in loader:
        inputs, targets = inputs.to(device), targets.to(device)
        loss = F.cross_entropy(model(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        optimizer.step()
    print(f"epoch {epoch} loss {loss.item():.6f}")


@torch.no_grad()
def evaluate(model, loader, device):
    model.eval()
    correct = count = 0
    for inputs, targets in loader:
        inputs, targets = inputs.to(device), targets.to(device)
        correct += (model(inputs).argmax(-1) == targets).sum().item()
        count += targets.numel()
    print(f"accuracy {correct / count:.6f}")
'''

FACTORY = '''import torch


def build_optimizer(model, lr):
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
'''

MODEL = '''import torch
from torch import nn


class Model{n}(nn.Module):
    """Model number {n}."""

    def __init__(self, width=32):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(16, width), nn.ReLU(), nn.Linear(width, 4))

    def forward(self, x):
        return self.layers(x)
'''

DATASET = '''import torch
from torch.utils.data import Dataset


class Dataset{n}(Dataset):
    def __init__(self, size):
        generator = torch.Generator().manual_seed({n})
        self.x = torch.randn(size, 16, generator=generator)
        self.y = torch.randint(0, 4, (size,), generator=generator)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        return self.x[index], self.y[index]
'''

HELPER = '''"""Helper module {n}: plain Python."""
import json
import os


def load_config(path):
    with open(path) as f:
        return json.load(f)


def output_dir(name):
    return os.path.join("runs", name, str({n}))
'''


def write_project(root: Path, files: int) -> list[Path]:
    """A project of ``files`` Python files under ``root``."""
    fixed = {"train.py": ENTRY, "engine.py": ENGINE, "factory.py": FACTORY, "utils.py": HELPER.format(n=0),
             "models/__init__.py": "", "data/__init__.py": ""}
    rest = files - len(fixed)
    models, datasets = rest * 2 // 5, rest * 2 // 5
    helpers = rest - models - datasets
    fixed.update({f"models/model_{n}.py": MODEL.format(n=n) for n in range(models)})
    fixed.update({f"data/dataset_{n}.py": DATASET.format(n=n) for n in range(datasets)})
    fixed.update({f"tools/helper_{n}.py": HELPER.format(n=n) for n in range(helpers)})
    for name, text in fixed.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return sorted(root / name for name in fixed)


def bytecode_env(cache: str) -> dict:
    """The environment for timed commands: bytecode written (into ``cache``) whatever PYTHONDONTWRITEBYTECODE says, so
    that after the warm-up run the modules load compiled, as an installed package has them."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = cache
    return env


def median_wall(cmd: list[str], repeat: int, cwd: Path, env: dict) -> dict:
    subprocess.run(cmd, capture_output=True, cwd=cwd, env=env)  # warm-up: bytecode cached
    times, codes = [], set()
    for _ in range(repeat):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, cwd=cwd, env=env)
        times.append(time.perf_counter() - t0)
        codes.add(proc.returncode)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "exit_codes": sorted(codes)}


def in_process(root: Path, paths: list[Path], repeat: int) -> dict:
    from accel_convert.project.conversion import convert_project
    from accel_convert.shell.grouping import group_files

    texts = {str(path): path.read_text() for path in paths}
    grouping, converting = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        clusters, _ = group_files([str(path) for path in paths], str(root))
        grouping.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        results = convert_project(texts, str(root))
        converting.append(time.perf_counter() - t0)
    changed = sorted(os.path.relpath(path, root) for path, result in results.items() if result.changed)
    return {"grouping_median_s": statistics.median(grouping), "convert_project_median_s": statistics.median(converting),
            "clusters": [[os.path.relpath(path, root) for path in cluster] for cluster in clusters], "changed": changed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "project_speed.json")
    args = parser.parse_args()
    if args.files < 12:
        parser.error("--files must be at least 12")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "project"
        paths = write_project(root, args.files)
        env = bytecode_env(str(Path(folder) / "pycache"))
        tool = [sys.executable, "-m", "accel_convert", "--check", "--no-color", "-q", "-j", "1"]
        project = median_wall([*tool, "."], args.repeat, root, env)
        alone_times = []
        for _ in range(max(1, args.repeat // 3)):
            t0 = time.perf_counter()
            for path in paths:
                subprocess.run([*tool, str(path.relative_to(root))], capture_output=True, cwd=root, env=env)
            alone_times.append(time.perf_counter() - t0)
        inside = in_process(root, paths, args.repeat)
    record = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout.strip(),
        "files": args.files, "project_check": project, "file_by_file_s": statistics.median(alone_times), **inside,
    }
    print(f"{'measurement':<46} {'seconds':>9}")
    print(f"{'accel-convert --check -j 1 DIR (' + str(args.files) + ' files)':<46} {project['median_s']:>9.3f}")
    print(f"{'accel-convert --check -j 1 FILE, each file':<46} {record['file_by_file_s']:>9.3f}")
    print(f"{'in process: grouping':<46} {inside['grouping_median_s']:>9.3f}")
    print(f"{'in process: convert_project':<46} {inside['convert_project_median_s']:>9.3f}")
    print(f"clusters: {inside['clusters']}; changed: {inside['changed']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
