"""Worker: write this process's launch environment and arguments to <out_dir>/rank<RANK>.json."""

import json
import os
import sys

out_dir = sys.argv[1]
names = [name for name in os.environ if name.startswith("ACCEL_")] + [
    "RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "OMP_NUM_THREADS",
    "CUDA_VISIBLE_DEVICES"]
record = {"env": {name: os.environ.get(name) for name in names}, "argv": sys.argv[2:], "pid": os.getpid()}
with open(os.path.join(out_dir, f"rank{os.environ['RANK']}.json"), "w") as f:
    json.dump(record, f)
