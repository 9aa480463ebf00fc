"""Who this process is (rank, world size, device) and the shared gradient-accumulation state."""

from __future__ import annotations

import enum
import io
import sys

import torch
import torch.distributed as dist

from .utils import env_bool, env_int


class DistributedType(str, enum.Enum):
    """How training is distributed; the values match Hugging Face Accelerate's ``DistributedType``."""

    NO = "NO"
    MULTI_CPU = "MULTI_CPU"
    MULTI_GPU = "MULTI_GPU"
    FSDP = "FSDP"
    DEEPSPEED = "DEEPSPEED"
    XLA = "XLA"


def _env_rank(name: str, default: int) -> int:
    value = env_int(name, default)
    if value < 0:
        raise ValueError(f"environment variable {name}={value} must be >= 0")
    return value


def _whole_lines(stream) -> None:
    """Make ``stream`` write each line in one piece, so lines printed by several processes never mix.

    Under ``PYTHONUNBUFFERED`` (or ``python -u``) ``print`` writes the text and the newline separately, and
    the output of two processes sharing a terminal or pipe can interleave mid-line; line buffering hands
    the operating system one write per line instead (atomic on pipes up to ``PIPE_BUF`` bytes).
    """
    if isinstance(stream, io.TextIOWrapper) and not stream.closed:
        stream.reconfigure(line_buffering=True, write_through=False)


def _pick_device(cpu: bool, local_rank: int) -> torch.device:
    if cpu:
        return torch.device("cpu")
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


class ProcessState:
    """Rank, world size and device of this process, read from the variables torchrun / ``accel launch`` set.

    With more than one process the default process group is created here (NCCL on CUDA, gloo otherwise),
    unless the script already created one.
    """

    def __init__(self, cpu: bool | None = None):
        self.cpu = env_bool("ACCEL_USE_CPU", False) if cpu is None else bool(cpu)
        self.num_processes = _env_rank("WORLD_SIZE", 1)
        if self.num_processes < 1:
            raise ValueError(f"environment variable WORLD_SIZE={self.num_processes} must be >= 1")
        self.process_index = _env_rank("RANK", 0)
        self.local_process_index = _env_rank("LOCAL_RANK", 0)
        self.device = _pick_device(self.cpu, self.local_process_index)
        if self.num_processes > 1:
            _whole_lines(sys.stdout)
            self.init_process_group()

    @property
    def is_main_process(self) -> bool:
        return self.process_index == 0

    @property
    def is_local_main_process(self) -> bool:
        return self.local_process_index == 0

    @property
    def is_last_process(self) -> bool:
        return self.process_index == self.num_processes - 1

    @property
    def use_distributed(self) -> bool:
        return self.num_processes > 1

    @property
    def process_group_backend(self) -> str:
        return "nccl" if self.device.type == "cuda" else "gloo"

    def init_process_group(self) -> None:
        """Create the default process group if none exists yet (idempotent)."""
        if dist.is_initialized():
            return
        kwargs = {"device_id": self.device} if self.device.type == "cuda" else {}
        dist.init_process_group(
            self.process_group_backend, rank=self.process_index, world_size=self.num_processes, **kwargs
        )

    def destroy_process_group(self) -> None:
        """Tear the default process group down (a no-op when there is none)."""
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()

    def __repr__(self) -> str:
        return (
            f"ProcessState(process_index={self.process_index}, local_process_index={self.local_process_index}, "
            f"num_processes={self.num_processes}, device={self.device})"
        )


class GradientState:
    """Shared by the Accelerator, its optimizers, schedulers and data loaders.

    ``sync_gradients`` is False on the micro-batches of an accumulation window where gradients are only
    accumulated locally; optimizers and schedulers do nothing then. The prepared data loaders being iterated
    form a stack: the innermost one tells whether the current batch is its last one (``end_of_dataloader``)
    and how many real samples its last gathered batch holds (``remainder``, ``real_samples_in_batch``).
    """

    def __init__(self, gradient_accumulation_steps: int):
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self.sync_gradients = True
        self.step = 0
        self._loaders: list = []

    def begin_loader(self, loader) -> None:
        self._loaders.append(loader)

    def end_loader(self, loader) -> None:
        if loader in self._loaders:
            self._loaders.remove(loader)

    @property
    def active_dataloader(self):
        return self._loaders[-1] if self._loaders else None

    @property
    def end_of_dataloader(self) -> bool:
        loader = self.active_dataloader
        return loader is not None and loader.end_of_dataloader

    @property
    def remainder(self) -> int:
        """Real samples in the last gathered batch of the active loader, -1 when nothing must be dropped."""
        loader = self.active_dataloader
        return -1 if loader is None else loader.remainder

    @property
    def real_samples_in_batch(self) -> int:
        """Real samples among those gathered from the active loader's current batch when it holds samples added to
        even out a round (``gather_for_metrics`` keeps only these), -1 when nothing must be dropped."""
        loader = self.active_dataloader
        return -1 if loader is None else loader.real_samples_in_batch

    def advance(self) -> None:
        """Count one micro-batch and decide whether its gradients are synchronised and applied."""
        if self.end_of_dataloader:
            self.step = 0
            self.sync_gradients = True
            return
        self.step += 1
        self.sync_gradients = self.step % self.gradient_accumulation_steps == 0
