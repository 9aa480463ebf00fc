"""Run a converted fixture script in this process (``runpy``), then write a fingerprint of the parameters of each
named module-level model to ``replica-<rank>.txt`` in the working directory, one ``<name> <sum> <norm>`` line each
(a file per process: the processes' printed lines interleave). Started under ``accel launch`` by
test_replicas_agree.py; a prepared wrapper is looked through (``.module``).

Usage: python replica_probe.py SCRIPT NAME[,NAME...] [SCRIPT_ARGS...]
"""

import os
import runpy
import sys

import torch


def main() -> None:
    script, names, *rest = sys.argv[1:]
    sys.argv = [script, *rest]
    namespace = runpy.run_path(script, run_name="__main__")
    lines = []
    for name in names.split(","):
        model = namespace[name]
        model = getattr(model, "module", model)
        flat = torch.cat([p.detach().reshape(-1).double().cpu() for p in model.parameters()])
        lines.append(f"{name} {flat.sum().item():.12e} {flat.norm().item():.12e}\n")
    with open(f"replica-{os.environ.get('RANK', '0')}.txt", "w") as handle:
        handle.writelines(lines)


if __name__ == "__main__":
    main()
