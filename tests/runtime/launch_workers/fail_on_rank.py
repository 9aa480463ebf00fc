"""Worker: the process whose RANK is argv[2] exits with code argv[3]; the others start a child process and sleep.

Each writes its pid to <out_dir>/pid<RANK>, and each child's pid to <out_dir>/child<RANK>.
"""

import os
import subprocess
import sys
import time

out_dir, failing_rank, code = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rank = int(os.environ["RANK"])
with open(os.path.join(out_dir, f"pid{rank}"), "w") as f:
    f.write(str(os.getpid()))
if rank == failing_rank:
    others = [f"child{r}" for r in range(int(os.environ["WORLD_SIZE"])) if r != rank]
    deadline = time.monotonic() + 60
    while not all(os.path.exists(os.path.join(out_dir, name)) for name in others) and time.monotonic() < deadline:
        time.sleep(0.05)  # fail only once the others sleep and have started their children
    raise SystemExit(code)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
with open(os.path.join(out_dir, f"child{rank}"), "w") as f:
    f.write(str(child.pid))
time.sleep(300)
