"""Worker: record its pid; the process whose RANK is argv[2] exits with code argv[3], the others sleep."""

import os
import sys
import time

out_dir, failing_rank, code = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(os.path.join(out_dir, f"pid{os.environ['RANK']}"), "w") as f:
    f.write(str(os.getpid()))
if int(os.environ["RANK"]) == failing_rank:
    time.sleep(1)  # let the others start sleeping
    raise SystemExit(code)
time.sleep(300)
