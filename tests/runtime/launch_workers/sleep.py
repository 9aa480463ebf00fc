"""Worker: record its pid in <out_dir>/pid<RANK>, then sleep (to be interrupted)."""

import os
import sys
import time

with open(os.path.join(sys.argv[1], f"pid{os.environ['RANK']}"), "w") as f:
    f.write(str(os.getpid()))
time.sleep(300)
