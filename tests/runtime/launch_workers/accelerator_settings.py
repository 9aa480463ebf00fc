"""Worker: build `Accelerator()` with no arguments, write what it picked up to <out_dir>/accel<RANK>.json, then
print 300 numbered lines from every process."""

import json
import os
import sys

from accel import Accelerator

accelerator = Accelerator()
record = {"mixed_precision": accelerator.mixed_precision, "num_processes": accelerator.num_processes,
          "process_index": accelerator.process_index, "device": str(accelerator.device),
          "gradient_accumulation_steps": accelerator.gradient_accumulation_steps}
with open(os.path.join(sys.argv[1], f"accel{accelerator.process_index}.json"), "w") as f:
    json.dump(record, f)
for line in range(300):
    print(f"process {accelerator.process_index} line {line}", "x" * 40)
accelerator.end_training()
