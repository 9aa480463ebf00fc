"""Train, checkpoint mid-epoch and continue (``full``), or load that checkpoint in a fresh process and continue
(``resume``); each process writes the losses of the steps after the checkpoint and its final state to
<out>/<mode>_rank<R>.pt. Exercises dropout, fp16 loss scaling (skipped steps), an LR scheduler, a shuffled
DataLoader whose samples draw random noise, and a registered custom object.

usage: resume.py full|resume OUT_DIR [full|sharded|zero2]   (FSDP with that state_dict_type, or DeepSpeed ZeRO-2)
"""

import random
import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from accel import Accelerator, DeepSpeedPlugin, FullyShardedDataParallelPlugin, set_seed

SAVE_AFTER, CONTINUE_FOR = 4, 5  # steps; the dataset has 6 batches of 4 per epoch (3 per process with 2)


class NoisyData(Dataset):
    def __init__(self):
        g = torch.Generator().manual_seed(3)
        self.x, self.y = torch.randn(24, 8, generator=g), torch.randn(24, 1, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i] + 0.01 * torch.rand(8) * random.random(), self.y[i]


class StepCounter:
    def __init__(self):
        self.steps = 0

    def state_dict(self):
        return {"steps": self.steps}

    def load_state_dict(self, state):
        self.steps = state["steps"]


def main(mode: str, out: Path, sharding: str | None) -> None:
    fsdp = FullyShardedDataParallelPlugin(state_dict_type=sharding) if sharding in ("full", "sharded") else None
    deepspeed = DeepSpeedPlugin(zero_stage=2) if sharding == "zero2" else None
    accelerator = Accelerator(mixed_precision="no" if sharding else "fp16", fsdp_plugin=fsdp, deepspeed_plugin=deepspeed)
    set_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.7)
    loader = DataLoader(NoisyData(), batch_size=4, shuffle=True)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    counter = StepCounter()
    accelerator.register_for_checkpointing(counter)
    checkpoint = out / "ckpt"
    if mode == "resume":
        accelerator.load_state(checkpoint)
    position = loader.position
    start_epoch, skip = position.epoch, position.batches_seen
    losses, scales = [], []
    for epoch in range(start_epoch, 100):
        batches = accelerator.skip_first_batches(loader, skip) if epoch == start_epoch and skip else loader
        for x, y in batches:
            loss = nn.functional.mse_loss(model(x), y)
            accelerator.backward(loss)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            counter.steps += 1
            if mode == "full" and counter.steps == SAVE_AFTER:
                accelerator.save_state(checkpoint)
            elif counter.steps > SAVE_AFTER:
                losses.append(loss.detach().clone())
                scales.append(accelerator.scaler.get_scale() if accelerator.scaler else 1.0)
            if counter.steps == SAVE_AFTER + CONTINUE_FOR:
                break
        else:
            continue
        break
    state = {k: v.detach().clone() for k, v in accelerator.get_state_dict(model).items()}
    torch.save({"losses": losses, "scales": scales, "lr": scheduler.get_last_lr(), "steps": counter.steps,
                "params": state, "epoch": epoch},
               out / f"{mode}_rank{accelerator.process_index}.pt")
    accelerator.end_training()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None)
