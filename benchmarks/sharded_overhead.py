"""Overhead of accel's sharding backends against the raw libraries: FSDP2 and DeepSpeed ZeRO-2 / ZeRO-3.

GPT-2 medium (350M parameters; the model of ``step_overhead.py``, no downloads), bf16, AdamW, random tokens. Variants:

* ``raw-fsdp``: ``fully_shard`` on every Block and on the root, ``MixedPrecisionPolicy(bf16, fp32 reduce)``;
* ``accel-fsdp``: ``Accelerator(mixed_precision="bf16", fsdp_plugin=FullyShardedDataParallelPlugin(("Block",)))``;
* ``raw-zero2`` / ``raw-zero3``: ``deepspeed.initialize`` with a bf16 config, ``engine.backward`` / ``engine.step``;
* ``accel-zero2`` / ``accel-zero3``: ``Accelerator(mixed_precision="bf16", deepspeed_plugin=DeepSpeedPlugin(...))``.

Each variant runs in its own ``torchrun`` job (the libraries keep global state, and peak memory must be its own);
the driver starts them in turn, ``--rounds`` times in rotating order, and reports per variant the median step time
(device synchronised around each timed step, warm-up excluded) and the peak memory per process (CUDA: the largest
``max_memory_allocated`` over the processes; CPU: the largest resident set size), plus accel's ratio to raw.

N GPUs:  python benchmarks/sharded_overhead.py --nproc 2 --out benchmarks/results/sharded_overhead.json
CPU check (tiny model, gloo):  python benchmarks/sharded_overhead.py --cpu --tiny --nproc 2 --steps 3 --warmup 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from step_overhead import GPT, TINY, GPTConfig, RandomTokens

MEDIUM = GPTConfig(n_layer=24, n_head=16, n_embd=1024)
VARIANTS = ("raw-fsdp", "accel-fsdp", "raw-zero2", "accel-zero2", "raw-zero3", "accel-zero3")


# -- one variant, inside a torchrun job -----------------------------------------------------------------------
def _device(cpu: bool) -> torch.device:
    if cpu or not torch.cuda.is_available():
        return torch.device("cpu")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local)
    return torch.device("cuda", local)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _ds_config(stage: int, batch: int) -> dict:
    return {"train_micro_batch_size_per_gpu": batch, "gradient_accumulation_steps": 1, "bf16": {"enabled": True},
            "zero_optimization": {"stage": stage}, "steps_per_print": 10**9}


def _build(variant: str, cfg: GPTConfig, device: torch.device, batch: int):
    """(step function taking (idx, targets), teardown)."""
    import torch.distributed as dist

    torch.manual_seed(0)
    model = GPT(cfg)
    optimizer_of = lambda m: torch.optim.AdamW(m.parameters(), lr=1e-4)
    if variant.startswith("accel"):
        from accel import Accelerator
        from accel.plugins import DeepSpeedPlugin, FullyShardedDataParallelPlugin

        plugin = {"fsdp_plugin": FullyShardedDataParallelPlugin(transformer_layer_cls=("Block",))} \
            if variant == "accel-fsdp" else {"deepspeed_plugin": DeepSpeedPlugin(zero_stage=int(variant[-1]))}
        accelerator = Accelerator(mixed_precision="bf16", cpu=device.type == "cpu", **plugin)
        optimizer = optimizer_of(model)
        model, optimizer = accelerator.prepare(model, optimizer)

        def step(idx, targets):
            loss = model(idx, targets)
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad()

        return step, accelerator.end_training
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if variant == "raw-fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        model.to(device)
        mesh = init_device_mesh(device.type, (dist.get_world_size(),))
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        for block in model.blocks:
            fully_shard(block, mesh=mesh, mp_policy=policy)
        fully_shard(model, mesh=mesh, mp_policy=policy)
        optimizer = optimizer_of(model)

        def step(idx, targets):
            model(idx, targets).backward()
            optimizer.step()
            optimizer.zero_grad()

        return step, dist.destroy_process_group
    import deepspeed

    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer_of(model),
                                           config=_ds_config(int(variant[-1]), batch), dist_init_required=False)

    def step(idx, targets):
        engine.backward(engine(idx, targets))
        engine.step()

    def teardown():
        engine.destroy()
        dist.destroy_process_group()

    return step, teardown


def run_variant(args) -> None:
    device = _device(args.cpu)
    if device.type == "cpu":
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    cfg = replace(TINY if args.tiny else MEDIUM, block_size=args.seq_len)
    step, teardown = _build(args.variant, cfg, device, args.batch)
    data = RandomTokens(args.batch * (args.warmup + args.steps), cfg, seed=1234 + int(os.environ.get("RANK", "0")))
    times = []
    for i in range(args.warmup + args.steps):
        rows = slice(i * args.batch, (i + 1) * args.batch)
        idx, targets = (data.tokens[rows, :-1].contiguous().to(device), data.tokens[rows, 1:].contiguous().to(device))
        _sync(device)
        start = time.perf_counter()
        step(idx, targets)
        _sync(device)
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    peak = (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    result = {"rank": int(os.environ.get("RANK", "0")), "step_s": times, "peak_bytes": peak}
    Path(args.result_dir, f"rank{result['rank']}.json").write_text(json.dumps(result))
    teardown()


# -- the driver ----------------------------------------------------------------------------------------------
def launch(variant: str, args, result_dir: str) -> dict:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(args.nproc),
           __file__, "--variant", variant, "--result-dir", result_dir, "--batch", str(args.batch),
           "--seq-len", str(args.seq_len), "--steps", str(args.steps), "--warmup", str(args.warmup)]
    cmd += ["--cpu"] * args.cpu + ["--tiny"] * args.tiny
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=args.timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{variant} failed with exit code {proc.returncode}:\n{proc.stderr[-3000:]}")
    ranks = [json.loads(p.read_text()) for p in sorted(Path(result_dir).glob("rank*.json"))]
    if len(ranks) != args.nproc:
        raise RuntimeError(f"{variant}: {len(ranks)} of {args.nproc} processes reported")
    slowest = [max(r["step_s"][i] for r in ranks) for i in range(args.steps)]  # a step ends when every rank did
    return {"step_s": slowest, "peak_bytes": max(r["peak_bytes"] for r in ranks)}


def drive(args) -> dict:
    variants = [v for v in VARIANTS if v in args.variants]
    samples: dict[str, dict] = {v: {"step_s": [], "peak_bytes": 0} for v in variants}
    for round_index in range(args.rounds):
        order = variants[round_index % len(variants):] + variants[:round_index % len(variants)]
        for variant in order:
            with tempfile.TemporaryDirectory() as result_dir:
                got = launch(variant, args, result_dir)
            samples[variant]["step_s"] += got["step_s"]
            samples[variant]["peak_bytes"] = max(samples[variant]["peak_bytes"], got["peak_bytes"])
            print(f"round {round_index + 1} {variant}: median step {statistics.median(got['step_s']) * 1e3:.1f} ms, "
                  f"peak {got['peak_bytes'] / 2**30:.2f} GiB", flush=True)
    summary = {v: {"median_step_ms": statistics.median(s["step_s"]) * 1e3, "peak_gib": s["peak_bytes"] / 2**30}
               for v, s in samples.items()}
    for v, entry in summary.items():
        raw = summary.get(v.replace("accel-", "raw-"))
        if v.startswith("accel-") and raw:
            entry["step_time_vs_raw"] = entry["median_step_ms"] / raw["median_step_ms"]
            entry["peak_memory_vs_raw"] = entry["peak_gib"] / raw["peak_gib"]
    return {"model": "tiny GPT" if args.tiny else "GPT-2 medium (350M)", "processes": args.nproc,
            "device": "cpu" if args.cpu else torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
            "batch_per_process": args.batch, "seq_len": args.seq_len, "timed_steps_per_round": args.steps,
            "rounds": args.rounds, "torch": torch.__version__, "results": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nproc", type=int, default=2, help="processes (GPUs) per variant")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant and round")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4, help="sequences per process and step")
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--cpu", action="store_true", help="run on CPU with gloo (a functional check)")
    parser.add_argument("--tiny", action="store_true", help="a 2-layer model instead of GPT-2 medium")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per variant run")
    parser.add_argument("--out", type=Path, default=None, help="write the summary as JSON here")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # set by the driver
    parser.add_argument("--result-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        run_variant(args)
        return
    if args.tiny:
        args.seq_len = min(args.seq_len, TINY.block_size)
    report = drive(args)
    print(json.dumps(report["results"], indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
