"""How fast the converter is: files/s and MB/s on many files, and the wall time of one `accel-convert --check`.

Two sets of files:

* library code: every ``.py`` file of the installed ``torch`` package — almost none of it is a training script, so the
  converter should reject most of it before parsing (target: at least 2,000 files/s);
* training scripts: the ``before.py`` of every fixture, converted repeatedly (target: at least 30 files/s per core).

Each set is converted in one process (in-process calls to ``convert_source``, files read beforehand) and with a pool of
all cores (workers read the files themselves, as the CLI does). Then ``accel-convert --check`` on one typical script is
started ``--repeat`` times and the median wall and CPU time reported, as a pre-commit hook would see it (with the
modules' bytecode cached, as an installed package has it; ``--instructions``: also the instructions of one run,
counted by valgrind, which a loaded machine does not change). ``ruff check`` and
``black --check`` on the same files are the reference points (when installed: ``pip install ruff black``).

Usage: python benchmarks/convert_speed.py [--out benchmarks/results/convert_speed.json] [--repeat 15] [--no-reference]
       [--instructions]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from accel_convert import ConvertError, Options, convert_source

REPO = Path(__file__).resolve().parent.parent
MIN_SECONDS = 1.0  # small sets are converted over and over until at least this long has passed


def torch_files() -> list[Path]:
    """All .py files of the installed torch package, found without importing torch (it takes seconds)."""
    import importlib.util

    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("torch is not installed: the library-code set is its .py files")
    root = Path(next(iter(spec.submodule_search_locations)))
    return sorted(root.rglob("*.py"))


def fixture_scripts() -> list[Path]:
    return sorted((REPO / "fixtures").glob("*/before.py"))


def convert_one(text: str) -> str:
    """Convert one file's text; return 'changed', 'unchanged', 'error' (a ConvertError) or 'crash: <exception>'."""
    try:
        result = convert_source(text, Options())
    except ConvertError:
        return "error"
    except Exception as exc:  # a bug in the converter: counted and reported, the benchmark goes on
        return f"crash: {type(exc).__name__}: {exc}"
    return "changed" if result.changed or result.diagnostics else "unchanged"


def convert_path(path: str) -> str:
    return convert_one(Path(path).read_text(encoding="utf-8", errors="surrogateescape"))


def _noop(_):
    return None


def split_by_prefilter(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """(files the converter rejects before parsing, files it parses), by its own pre-parse check."""
    from accel_convert.analysis.prefilter import may_need_conversion

    skipped, parsed = [], []
    for path in paths:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        (parsed if may_need_conversion(text) else skipped).append(path)
    return skipped, parsed


def single_process(paths: list[Path], min_seconds: float = 0.0) -> dict:
    """Convert every file in this process, in rounds until ``min_seconds`` passed; files are read beforehand.

    Wall time and this process's CPU time are both reported: on a shared machine the CPU time is the steadier one.
    The first round also records each file's outcome and the slowest files.
    """
    texts = [p.read_text(encoding="utf-8", errors="surrogateescape") for p in paths]
    size = sum(len(t.encode("utf-8", "surrogateescape")) for t in texts)
    outcomes: dict[str, int] = {}
    crashes: list[dict] = []
    per_file: dict[Path, float] = {}
    for path, text in zip(paths, texts, strict=True):
        t0 = time.perf_counter()
        outcome = convert_one(text)
        per_file[path] = time.perf_counter() - t0
        if outcome.startswith("crash"):
            crashes.append({"path": str(path), "error": outcome.removeprefix("crash: ")})
            outcome = "crash"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    rounds, start, cpu_start = 0, time.perf_counter(), time.process_time()
    while True:
        for text in texts:
            convert_one(text)
        rounds += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            break
    cpu = time.process_time() - cpu_start
    n = len(paths) * rounds
    slowest = sorted(per_file.items(), key=lambda item: item[1], reverse=True)[:5]
    return {
        "processes": 1,
        "files": len(paths),
        "rounds": rounds,
        "bytes_per_round": size,
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "files_per_s": n / elapsed,
        "files_per_cpu_s": n / cpu if cpu else None,
        "mb_per_s": size * rounds / elapsed / 1e6,
        "outcomes": outcomes,
        "median_ms_per_file": statistics.median(per_file.values()) * 1e3,
        "slowest": [{"path": str(p), "ms": t * 1e3} for p, t in slowest],
        "crashes": crashes,
    }


def all_cores(paths: list[Path], processes: int, min_seconds: float = 0.0) -> dict:
    """Convert every file with a pool of ``processes`` workers that read the files themselves.

    Starting the pool is not timed."""
    size = sum(p.stat().st_size for p in paths)
    names = [str(p) for p in paths]
    chunk = max(1, len(names) // (processes * 8))
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        pool.map(_noop, range(processes * 4), chunksize=1)  # start every worker (imports happen at unpickling)
        pool.map(convert_path, names[: processes * 2], chunksize=1)  # and load libcst in each
        rounds, start = 0, time.perf_counter()
        while True:
            pool.map(convert_path, names, chunksize=chunk)
            rounds += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
    n = len(paths) * rounds
    return {
        "processes": processes,
        "files": len(paths),
        "rounds": rounds,
        "seconds": elapsed,
        "files_per_s": n / elapsed,
        "files_per_s_per_core": n / elapsed / processes,
        "mb_per_s": size * rounds / elapsed / 1e6,
    }


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wall_times(cmd: list[str], repeat: int, env: dict | None = None) -> dict:
    """Start ``cmd`` ``repeat`` times (after one warm-up run) and summarise the wall times, like hyperfine, and the
    CPU time (user + system) of each run, which swings less than the wall time on a loaded machine."""
    subprocess.run(cmd, capture_output=True, env=env)
    times, cpu, codes = [], [], set()
    for _ in range(repeat):
        c0, t0 = _children_cpu_s(), time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, env=env)
        times.append(time.perf_counter() - t0)
        cpu.append(_children_cpu_s() - c0)
        codes.add(proc.returncode)
    return {
        "command": " ".join(cmd),
        "runs": repeat,
        "median_ms": statistics.median(times) * 1e3,
        "min_ms": min(times) * 1e3,
        "max_ms": max(times) * 1e3,
        "cpu_median_ms": statistics.median(cpu) * 1e3,
        "exit_codes": sorted(codes),
    }


def tool_on_files(cmd: list[str], files: list[Path], env: dict | None = None, repeat: int = 3) -> dict:
    """Run a whole-set command (ruff / black) on ``files`` ``repeat`` times; the median wall time and files/s."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([*cmd, *map(str, files)], capture_output=True, env=env)
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    return {"files": len(files), "runs": repeat, "median_s": median, "files_per_s": len(files) / median}


def reference_points(
    library: list[Path], scripts: list[Path], typical: Path, repeat: int, processes: int, black_every: int
) -> dict:
    """ruff (a linter in Rust) and black (a formatter that parses everything in Python) on the same files.

    black --check takes about a second per torch file on one core, so it gets every ``black_every``-th library file.
    """
    out: dict = {}
    ruff_exe, black_exe = executable("ruff"), executable("black")
    if ruff_exe:
        out["ruff_version"] = subprocess.run([ruff_exe, "--version"], capture_output=True, text=True).stdout.strip()
        ruff = [ruff_exe, "check", "--no-cache", "--isolated", "--quiet", "--exit-zero"]
        out["ruff_check_one_file"] = wall_times([*ruff, str(typical)], repeat)
        for label, threads in (("one_thread", 1), ("all_cores", processes)):
            env = {**os.environ, "RAYON_NUM_THREADS": str(threads)}
            out[f"ruff_check_library_{label}"] = tool_on_files(ruff, library, env=env)
            out[f"ruff_check_training_{label}"] = tool_on_files(ruff, scripts, env=env)
    if black_exe:
        out["black_version"] = subprocess.run([black_exe, "--version"], capture_output=True, text=True).stdout
        out["black_version"] = out["black_version"].splitlines()[0]
        sample = library[::black_every]
        out["black_sample"] = {
            "every": black_every,
            "files": len(sample),
            "bytes": sum(p.stat().st_size for p in sample),
        }
        for label, workers in (("one_process", 1), ("all_cores", processes)):
            black = [black_exe, "--check", "--quiet", "--no-cache", "--workers", str(workers)]
            out[f"black_check_library_sample_{label}"] = tool_on_files(black, sample, repeat=1)
            out[f"black_check_training_{label}"] = tool_on_files(black, scripts)
        out["black_check_one_file"] = wall_times([black_exe, "--check", "--quiet", "--no-cache", str(typical)], repeat)
    return out


def git_commit() -> str:
    """The checked-out commit, or "" where there is no git (a copied tree)."""
    if not shutil.which("git"):
        return ""
    proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    return proc.stdout.strip()


def typical_script(scripts: list[Path]) -> Path:
    """The fixture script of median size: a typical training script."""
    by_size = sorted(scripts, key=lambda p: p.stat().st_size)
    return by_size[len(by_size) // 2]


def executable(name: str) -> str | None:
    """The console script ``name`` installed beside this interpreter, else on PATH (a pyenv shim there adds its own
    start-up time to every run)."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def instructions(cmd: list[str], env: dict) -> int | None:
    """Instructions one run of ``cmd`` executes, counted by valgrind (``--instructions``): unlike the wall and CPU
    time, the count does not depend on what else the machine is doing, so before/after comparisons hold on a
    loaded machine. None without valgrind."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    proc = subprocess.run(
        [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd], capture_output=True, text=True, env=env
    )
    counts = [line.split()[-1] for line in proc.stderr.splitlines() if "Collected :" in line]
    return int(counts[-1]) if counts else None


def one_file_checks(typical: Path, plain: Path, repeat: int, cache: str, count_instructions: bool) -> dict:
    """Wall time of ``accel-convert --check`` on one training script and on one file without training code, and of
    a bare interpreter start and of importing libcst, for scale.

    The commands may write bytecode (into ``cache``, whatever PYTHONDONTWRITEBYTECODE says), so that the warm-up run
    leaves the modules compiled, as an installed package has them: an editable install under
    PYTHONDONTWRITEBYTECODE=1 would otherwise compile the converter's own modules again on every start."""
    exe = executable("accel-convert")
    check = [exe, "--check"] if exe else [sys.executable, "-m", "accel_convert", "--check"]
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = cache
    commands = {
        "python_startup": [sys.executable, "-c", "pass"],
        "import_libcst": [sys.executable, "-c", "import libcst"],
        "training_script": [*check, str(typical)],
        "no_training_file": [*check, str(plain)],
    }
    results = {key: wall_times(cmd, repeat, env) for key, cmd in commands.items()}
    if count_instructions:
        for key, cmd in commands.items():
            results[key]["instructions"] = instructions(cmd, env)
    return results


SETS = (
    ("no_training", "torch .py, skipped before parsing", "2000 files/s"),
    ("library_parsed", "torch .py, parsed (test code with .backward)", ""),
    ("training", "training scripts (fixtures)", "30 files/s/core"),
)


def print_table(report: dict) -> None:
    rows = [("files", "tool", "procs", "files", "files/s", "files/CPU-s", "MB/s", "target")]
    procs = report["machine"]["cpus"]
    for key, label, target in SETS:
        for r in (report[f"{key}_one_process"], report[f"{key}_all_cores"]):
            cpu = r.get("files_per_cpu_s")
            rows.append(
                (
                    label,
                    "accel-convert",
                    str(r["processes"]),
                    str(r["files"]),
                    f"{r['files_per_s']:.1f}",
                    f"{cpu:.1f}" if cpu else "",
                    f"{r['mb_per_s']:.2f}",
                    target,
                )
            )
    whole = report["library_one_process"]
    rows.append(
        ("torch .py, all", "accel-convert", "1", str(whole["files"]), f"{whole['files_per_s']:.1f}", "", "", "")
    )
    sample = report["library_sample_one_process"]
    rows.append(
        (
            "torch .py, black's sample",
            "accel-convert",
            "1",
            str(sample["files"]),
            f"{sample['files_per_s']:.1f}",
            "",
            "",
            "",
        )
    )
    ref = report.get("reference", {})
    for tool in ("ruff", "black"):
        for files, label in (
            ("library", "torch .py, all"),
            ("library_sample", "torch .py, black's sample"),
            ("training", "training scripts (fixtures)"),
        ):
            for suffix in ("one_thread", "one_process", "all_cores"):
                r = ref.get(f"{tool}_check_{files}_{suffix}")
                if r:
                    n = "1" if suffix != "all_cores" else str(procs)
                    rows.append((label, f"{tool} check", n, str(r["files"]), f"{r['files_per_s']:.1f}", "", "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    crashes = [c for key, _, _ in SETS for c in report[f"{key}_one_process"]["crashes"]]
    if crashes:
        print(f"\nconverter crashed on {len(crashes)} file(s):")
        for c in crashes:
            print(f"  {c['path']}: {c['error']}")
    print()
    checks = report["one_file"]
    one = [
        ("python -c pass", checks["python_startup"]),
        ("python -c 'import libcst'", checks["import_libcst"]),
        ("accel-convert --check", checks["training_script"]),
        ("ruff check", ref.get("ruff_check_one_file")),
        ("black --check", ref.get("black_check_one_file")),
        ("accel-convert --check", checks["no_training_file"]),
    ]
    print("one file, wall time of a fresh process:")
    for (name, r), target in zip(one, ["", "", *[report["typical_script"]] * 3, report["plain_file"]], strict=True):
        if r:
            spread = f"min {r['min_ms']:.1f}, max {r['max_ms']:.1f}, {r['runs']} runs"
            cpu = f", CPU {r['cpu_median_ms']:.1f} ms" if "cpu_median_ms" in r else ""
            cpu += f", {r['instructions'] / 1e6:.0f} M instructions" if r.get("instructions") else ""
            print(f"  {name:26s} {target[-45:]:45s} median {r['median_ms']:7.1f} ms  ({spread}{cpu})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "convert_speed.json")
    parser.add_argument("--repeat", type=int, default=15, help="runs of each one-file command (at least 10)")
    parser.add_argument("--processes", type=int, default=os.cpu_count())
    parser.add_argument("--no-reference", action="store_true", help="skip ruff and black")
    parser.add_argument(
        "--instructions", action="store_true", help="also count each one-file command's instructions (valgrind)"
    )
    parser.add_argument("--black-every", type=int, default=40, help="black checks every N-th torch file (it is slow)")
    args = parser.parse_args()
    if args.repeat < 10:
        parser.error("--repeat must be at least 10")

    library, scripts = torch_files(), fixture_scripts()
    if not scripts:
        sys.exit(f"no fixtures/*/before.py under {REPO}")
    typical = typical_script(scripts)
    skipped, parsed = split_by_prefilter(library)
    plain = sorted(skipped, key=lambda p: p.stat().st_size)[len(skipped) // 2]  # a library file of median size
    sets = {"no_training": (skipped, MIN_SECONDS), "library_parsed": (parsed, 0.0), "training": (scripts, MIN_SECONDS)}
    report: dict = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": args.processes,
            "processor": platform.processor(),
            "load_average_at_start": os.getloadavg(),
        },
        "commit": git_commit(),
        "typical_script": str(typical.relative_to(REPO)),
    }
    for key, (paths, min_seconds) in sets.items():
        report[f"{key}_one_process"] = single_process(paths, min_seconds)
        report[f"{key}_all_cores"] = all_cores(paths, args.processes, min_seconds)
    per_round = {
        key: report[f"{key}_one_process"]["seconds"] / report[f"{key}_one_process"]["rounds"]
        for key in ("no_training", "library_parsed")
    }
    report["library_one_process"] = {"files": len(library), "files_per_s": len(library) / sum(per_round.values())}
    sample = library[:: args.black_every]
    sample_seconds = 0.0
    for path in sample:  # the converter alone on black's sample, for a like-for-like line
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        t0 = time.perf_counter()
        convert_one(text)
        sample_seconds += time.perf_counter() - t0
    report["library_sample_one_process"] = {"files": len(sample), "files_per_s": len(sample) / sample_seconds}
    report["plain_file"] = str(plain)
    with tempfile.TemporaryDirectory(prefix="accel-convert-bytecode-") as cache:
        report["one_file"] = one_file_checks(typical, plain, args.repeat, cache, args.instructions)
    if not args.no_reference:
        report["reference"] = reference_points(library, scripts, typical, args.repeat, args.processes, args.black_every)
    report["load_average_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
