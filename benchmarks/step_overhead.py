"""Per-step overhead of `accel` (and of Hugging Face Accelerate) against raw PyTorch, training GPT-2 small.

GPT-2 small (124M parameters, defined below: no downloads), 16 x 1024 random tokens per process and step, bf16 autocast,
fused AdamW, a DataLoader of random tokens. Variants, all built from the same seed and fed the same batches:

* ``raw``: plain PyTorch — autocast written by hand, ``.to(device, non_blocking=True)``, DDP when WORLD_SIZE > 1;
* ``accel``: ``Accelerator(mixed_precision="bf16")``, ``prepare``, ``accelerator.backward``;
* ``accelerate``: the same lines with Hugging Face Accelerate (when installed).

Each mode (``eager``; ``compiled`` = ``torch.compile`` of the model before DDP / ``prepare``, as in a converted script)
builds the variants in one process and times them INTERLEAVED: round after round, every variant runs ``--steps`` steps,
in an order that rotates each round, so drift (clocks, temperature, other tenants) hits all of them alike. Warm-up
steps (compilation included) are not timed. A step is timed by synchronising the device, running fetch-batch / forward
/ backward / optimizer step / zero_grad, and synchronising again; ``host_ms`` is the part before the final synchronise
(the Python side of the step). Ratios against raw are taken per round (paired), then summarised by their median.
``max_loss_rel_diff_vs_raw`` checks that the variants train alike: with one process they see the same batches; with
several, raw's DistributedSampler deals samples round-robin while ``prepare`` deals whole batches, so rank 0's losses
differ by data, not by a bug.

One GPU:   python benchmarks/step_overhead.py --out benchmarks/results/step_overhead_1gpu.json
N GPUs:    torchrun --nproc-per-node N benchmarks/step_overhead.py --out ...
CPU check: python benchmarks/step_overhead.py --tiny
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import random
import statistics
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class GPTConfig:
    block_size: int = 1024
    vocab_size: int = 50304  # GPT-2's 50257 padded to a multiple of 64
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768


TINY = GPTConfig(block_size=64, vocab_size=512, n_layer=2, n_head=2, n_embd=64)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = MLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """GPT-2: token + position embeddings, pre-norm blocks, a final LayerNorm, an LM head tied to the embedding."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2's scaled init of the residual projections
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx, targets=None):
        """The loss when ``targets`` are given, else the logits."""
        pos = torch.arange(idx.size(1), device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        if targets is None:
            return logits
        return F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.view(-1))


def lm_loss(logits, targets):
    """The loss a script computes from the logits after the forward pass (``--loss after-forward``)."""
    return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


class RandomTokens(Dataset):
    """``n`` fixed random sequences of ``block_size + 1`` tokens; item i is (tokens[:-1], tokens[1:])."""

    def __init__(self, n: int, cfg: GPTConfig, seed: int = 1234):
        gen = torch.Generator().manual_seed(seed)
        self.tokens = torch.randint(0, cfg.vocab_size, (n, cfg.block_size + 1), generator=gen)

    def __len__(self):
        return len(self.tokens)

    def __getitem__(self, i):
        seq = self.tokens[i]
        return seq[:-1], seq[1:]


def make_optimizer(model: nn.Module, fused: bool) -> torch.optim.Optimizer:
    """AdamW as GPT-2 recipes set it: weight decay on matrices only."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=6e-4, betas=(0.9, 0.95), fused=fused)


@dataclass
class Setup:
    """What the benchmark needs from the environment (torchrun's variables, the device)."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @classmethod
    def from_env(cls, cpu: bool) -> Setup:
        rank = int(os.environ.get("RANK", 0))
        world = int(os.environ.get("WORLD_SIZE", 1))
        local = int(os.environ.get("LOCAL_RANK", 0))
        if cpu or not torch.cuda.is_available():
            device = torch.device("cpu")
        else:
            device = torch.device("cuda", local)
            torch.cuda.set_device(device)
        if world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return cls(rank, world, local, device)

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


class Variant:
    """One way of writing the training step; ``step()`` trains on the next batch and returns the loss tensor."""

    name = ""

    def __init__(
        self, cfg: GPTConfig, loader_kwargs: dict, setup: Setup, compiled: bool, seed: int, loss: str
    ):
        self.setup = setup
        self.loss = loss
        self.loss_in_model = loss == "in-model"
        torch.manual_seed(seed)
        model = GPT(cfg)
        self.build(model, loader_kwargs, compiled)
        self._iter = iter(self.loader)

    def next_batch(self):
        try:
            return next(self._iter)
        except StopIteration:
            self._iter = iter(self.loader)
            return next(self._iter)

    def build(self, model, loader_kwargs, compiled):
        raise NotImplementedError

    def step(self):
        raise NotImplementedError


class Raw(Variant):
    name = "raw"

    def build(self, model, loader_kwargs, compiled):
        s = self.setup
        model = model.to(s.device)
        self.optimizer = make_optimizer(model, fused=s.device.type == "cuda")
        if compiled:
            model = torch.compile(model)
        if s.world_size > 1:
            model = nn.parallel.DistributedDataParallel(
                model, device_ids=[s.local_rank] if s.device.type == "cuda" else None
            )
        self.model = model
        dataset = loader_kwargs.pop("dataset")
        sampler = DistributedSampler(dataset, shuffle=False) if s.world_size > 1 else None
        self.loader = DataLoader(dataset, sampler=sampler, pin_memory=s.device.type == "cuda", **loader_kwargs)

    def step(self):
        x, y = self.next_batch()
        x = x.to(self.setup.device, non_blocking=True)
        y = y.to(self.setup.device, non_blocking=True)
        with torch.autocast(self.setup.device.type, dtype=torch.bfloat16):
            loss = self.model(x, y) if self.loss_in_model else lm_loss(self.model(x), y)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss


class _Prepared(Variant):
    """A variant written against the Accelerator API (ours or Hugging Face's: same names)."""

    module = ""

    def build(self, model, loader_kwargs, compiled):
        accelerator_cls = importlib.import_module(self.module).Accelerator
        kwargs = {"mixed_precision": "bf16"}
        if self.setup.device.type == "cpu":
            kwargs["cpu"] = True
        self.accelerator = accelerator_cls(**kwargs)
        optimizer = make_optimizer(model.to(self.accelerator.device), fused=self.setup.device.type == "cuda")
        if compiled:
            model = torch.compile(model)
        loader = DataLoader(pin_memory=self.setup.device.type == "cuda", **loader_kwargs)
        self.model, self.optimizer, self.loader = self.accelerator.prepare(model, optimizer, loader)

    def step(self):
        x, y = self.next_batch()
        if self.loss == "autocast-block":  # the Accelerate idiom: forward and loss under accelerator.autocast()
            with self.accelerator.autocast():
                loss = lm_loss(self.model(x), y)
        else:  # a prepared forward returns fp32 logits
            loss = self.model(x, y) if self.loss_in_model else lm_loss(self.model(x), y)
        self.accelerator.backward(loss)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss


class Accel(_Prepared):
    name = "accel"
    module = "accel"


class HFAccelerate(_Prepared):
    name = "accelerate"
    module = "accelerate"


VARIANTS = {cls.name: cls for cls in (Raw, Accel, HFAccelerate)}


def available(name: str) -> bool:
    return name == "raw" or importlib.util.find_spec(VARIANTS[name].module) is not None


def time_step(variant: Variant, setup: Setup) -> tuple[float, float, torch.Tensor]:
    """(step ms, host ms, loss) of one step, the device synchronised before and after."""
    setup.sync()
    t0 = time.perf_counter()
    loss = variant.step()
    t1 = time.perf_counter()
    setup.sync()
    t2 = time.perf_counter()
    return (t2 - t0) * 1e3, (t1 - t0) * 1e3, loss


def bootstrap_ci(ratios: list[float], resamples: int = 2000) -> list[float]:
    """A 95% interval for the median of ``ratios`` (rounds resampled with replacement, fixed seed)."""
    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(resamples))
    return [medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]]


def summarise(values: list[float]) -> dict:
    q = statistics.quantiles(values, n=10) if len(values) >= 2 else [values[0]] * 9
    return {
        "median": statistics.median(values),
        "p10": q[0],
        "p90": q[-1],
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def run_mode(mode: str, names: list[str], cfg: GPTConfig, args, setup: Setup) -> dict:
    """Build every variant of one mode, warm each up, then time them interleaved; the summary of this mode."""
    n_steps = args.warmup + args.rounds * args.steps
    dataset = RandomTokens(n_steps * args.batch_size * setup.world_size, cfg)
    loader_kwargs = {
        "dataset": dataset,
        "batch_size": args.batch_size,
        "shuffle": False,
        "num_workers": 0,
        "drop_last": True,
    }
    variants = [
        VARIANTS[n](cfg, dict(loader_kwargs), setup, mode == "compiled", args.seed, args.loss)
        for n in names
    ]

    warm_losses = {}
    for v in variants:
        t0 = time.perf_counter()
        for _ in range(args.warmup):
            loss = v.step()
        setup.sync()
        warm_losses[v.name] = {"warmup_s": time.perf_counter() - t0, "loss": loss.item()}

    steps = {v.name: [] for v in variants}
    host = {v.name: [] for v in variants}
    losses = {v.name: [] for v in variants}
    per_round = []
    for r in range(args.rounds):
        order = variants[r % len(variants) :] + variants[: r % len(variants)]
        medians = {}
        for v in order:
            times = []
            for _ in range(args.steps):
                step_ms, host_ms, loss = time_step(v, setup)
                times.append(step_ms)
                host[v.name].append(host_ms)
            losses[v.name].append(loss.item())
            steps[v.name] += times
            medians[v.name] = statistics.median(times)
        per_round.append(medians)
        if setup.rank == 0 and args.verbose:
            print(f"[{mode}] round {r}: " + "  ".join(f"{k} {m:.2f} ms" for k, m in medians.items()), flush=True)

    result = {"variants": {}}
    for v in variants:
        entry = {
            "step_ms": summarise(steps[v.name]),
            "host_ms": summarise(host[v.name]),
            **warm_losses[v.name],
            "last_losses": losses[v.name][-3:],
        }
        if v.name != "raw" and "raw" in steps:
            ratios = [m[v.name] / m["raw"] for m in per_round]
            entry["ratio_vs_raw"] = {
                "median_of_round_ratios": statistics.median(ratios),
                "min": min(ratios),
                "max": max(ratios),
                "ratio_of_medians": entry["step_ms"]["median"] / statistics.median(steps["raw"]),
                "ci95_of_median_ratio": bootstrap_ci(ratios),
            }
            entry["max_loss_rel_diff_vs_raw"] = max(
                abs(a - b) / abs(b) for a, b in zip(losses[v.name], losses["raw"], strict=True)
            )
        result["variants"][v.name] = entry
    result["per_round_median_ms"] = per_round
    del variants
    gc.collect()
    if setup.device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def versions() -> dict:
    out = {"torch": torch.__version__, "python": platform.python_version()}
    for name in ("accel-convert", "accelerate"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[name] = importlib.metadata.version(name)
    if torch.cuda.is_available():
        out["cuda"] = torch.version.cuda
        out["device_name"] = torch.cuda.get_device_name()
    return out


def print_table(report: dict) -> None:
    print(
        f"\n{report['world_size']} process(es) on {report['versions'].get('device_name', 'cpu')}, "
        f"{report['batch_size']} x {report['config']['block_size']} tokens per process, loss {report['loss']}, "
        f"{report['rounds']} rounds x {report['steps']} steps per variant"
    )
    columns = ("mode", 9), ("variant", 11), ("median ms", -10), ("p10-p90 ms", -17), ("host ms", -8), ("vs raw", -8)
    print(
        " ".join(f"{n:{'>' if w < 0 else '<'}{abs(w)}}" for n, w in columns) + f" {'95% CI':>15s} {'round ratios':>17s}"
    )
    for mode, res in report["modes"].items():
        for name, v in res["variants"].items():
            s, h = v["step_ms"], v["host_ms"]
            ratio, ci, spread = "", "", ""
            if "ratio_vs_raw" in v:
                r = v["ratio_vs_raw"]
                low, high = r["ci95_of_median_ratio"]
                ratio = f"{(r['median_of_round_ratios'] - 1) * 100:+.2f}%"
                ci = f"{(low - 1) * 100:+.2f}..{(high - 1) * 100:+.2f}%"
                spread = f"{(r['min'] - 1) * 100:+.1f}..{(r['max'] - 1) * 100:+.1f}%"
            print(
                f"{mode:9s} {name:11s} {s['median']:10.2f} {s['p10']:8.2f}-{s['p90']:<8.2f} {h['median']:8.2f} "
                f"{ratio:>8s} {ci:>15s} {spread:>17s}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tiny", action="store_true", help="a 2-layer model on short sequences, to check the script on CPU"
    )
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even if CUDA is available")
    parser.add_argument(
        "--variants", default="raw,accel,accelerate", help="comma-separated; those not installed are skipped"
    )
    parser.add_argument("--modes", default="eager,compiled")
    parser.add_argument("--batch-size", type=int, default=None, help="sequences per process and step (16; tiny: 4)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps per variant and mode (10; tiny: 2)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (15; tiny: 3)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per variant and round (10; tiny: 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--loss",
        choices=("in-model", "after-forward", "autocast-block"),
        default="in-model",
        help="where the loss is computed: in the model's forward, or by the script from the logits it returns "
        "(raw inside its autocast block; prepared models return fp32 logits), or (autocast-block) by the script "
        "with forward and loss under accelerator.autocast()",
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON report (rank 0 writes it)")
    parser.add_argument("--verbose", action="store_true", help="print each round's medians")
    args = parser.parse_args()
    defaults = (
        dict(batch_size=4, warmup=2, rounds=3, steps=3)
        if args.tiny
        else dict(batch_size=16, warmup=10, rounds=15, steps=10)
    )
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)

    cfg = TINY if args.tiny else GPTConfig()
    setup = Setup.from_env(cpu=args.cpu)
    if setup.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    names = [n for n in args.variants.split(",") if n]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}: expected some of {', '.join(VARIANTS)}")
    skipped = [n for n in names if not available(n)]
    names = [n for n in names if n not in skipped]
    modes = [m for m in args.modes.split(",") if m]
    bad = [m for m in modes if m not in ("eager", "compiled")]
    if bad:
        parser.error(f"unknown mode(s) {', '.join(bad)}: expected eager and/or compiled")

    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": versions(),
        "world_size": setup.world_size,
        "device": str(setup.device),
        "config": asdict(cfg),
        "params_millions": sum(p.numel() for p in GPT(cfg).parameters()) / 1e6,
        "batch_size": args.batch_size,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "steps": args.steps,
        "loss": args.loss,
        "skipped_variants": skipped,
        "modes": {},
    }
    for mode in modes:
        report["modes"][mode] = run_mode(mode, names, cfg, args, setup)
    if setup.rank == 0:
        print_table(report)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=2) + "\n")
            print(f"wrote {args.out}")
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
