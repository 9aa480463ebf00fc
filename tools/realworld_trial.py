"""Try accel-convert on public training scripts as a new user would, and tabulate what happened.

Reads a TSV of (repo, path, commit), takes each file out of a local mirror (``<mirrors>/<owner>+<name>/repo``, a bare
git directory as the `fetch` tool leaves it), copies it to a scratch folder outside this repository, and runs
``accel-convert --diff`` and then ``accel-convert`` in place on the copy. For each script it records the exit codes,
the diagnostics printed, the number of changed lines and whether the result still compiles, and writes

  <scratch>/<owner>+<name>/<path>            the original (kept as .orig) and the converted copy
  <scratch>/<owner>+<name>/<path>.diff       what --diff printed
  <scratch>/results.tsv                      one row per script

Nothing here is committed with the fetched code; only this driver is ours.
Usage: python tools/realworld_trial.py SCRIPTS.tsv MIRRORS_DIR SCRATCH_DIR
"""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
from pathlib import Path

CONVERT = [sys.executable, "-m", "accel_convert", "--no-color"]
TIMEOUT = 120
COLUMNS = ["repo", "path", "revision", "diff_rc", "write_rc", "changed_lines", "diagnostics", "diagnostic_count", "compiles", "stderr"]
_DIAGNOSTIC = re.compile(r":\d+:\d+: (AC\d+) ")


def read_table(path: Path) -> list[tuple[str, str, str]]:
    rows = []
    with path.open(newline="") as handle:
        for row in csv.reader((line for line in handle if not line.startswith("#")), delimiter="\t"):
            if row and row[0] != "repo":
                rows.append((row[0], row[1], row[2]))
    return rows


def extract(mirrors: Path, repo: str, path: str, commit: str, target: Path) -> str | None:
    """Write ``repo:path`` at ``commit`` (else the mirror's HEAD) to ``target``; return which revision, or None."""
    git_dir = mirrors / repo.replace("/", "+") / "repo"
    for revision in (commit, "HEAD"):
        shown = subprocess.run(["git", "--git-dir", str(git_dir), "show", f"{revision}:{path}"], capture_output=True)
        if shown.returncode == 0:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(shown.stdout)
            return revision
    return None


def compiles(path: Path) -> bool:
    return subprocess.run([sys.executable, "-m", "py_compile", str(path)], capture_output=True).returncode == 0


def try_one(script: Path) -> dict:
    original = script.with_name(script.name + ".orig")
    shutil.copyfile(script, original)
    diff = subprocess.run([*CONVERT, "--diff", str(script)], capture_output=True, text=True, timeout=TIMEOUT)
    script.with_name(script.name + ".diff").write_text(diff.stdout + diff.stderr)
    write = subprocess.run([*CONVERT, str(script)], capture_output=True, text=True, timeout=TIMEOUT)
    changed = sum(1 for line in diff.stdout.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---"))
    codes = _DIAGNOSTIC.findall(diff.stderr)
    return {
        "diff_rc": diff.returncode,
        "write_rc": write.returncode,
        "changed_lines": changed,
        "diagnostics": " ".join(sorted(set(codes))),
        "diagnostic_count": len(codes),
        "compiles": compiles(script) if script.suffix == ".py" else "",
        "stderr": (write.stderr.strip().splitlines() or [""])[-1][:200],
    }


def main(argv: list[str]) -> int:
    table, mirrors, scratch = Path(argv[0]), Path(argv[1]), Path(argv[2])
    scratch.mkdir(parents=True, exist_ok=True)
    results = []
    for repo, path, commit in read_table(table):
        target = scratch / repo.replace("/", "+") / path
        revision = extract(mirrors, repo, path, commit, target)
        row = {"repo": repo, "path": path, "revision": revision or "missing"}
        if revision is not None:
            row.update(try_one(target))
        results.append(row)
        print("\t".join(str(value) for value in row.values()), flush=True)
    with (scratch / "results.tsv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS, delimiter="\t", restval="")
        writer.writeheader()
        writer.writerows(results)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
