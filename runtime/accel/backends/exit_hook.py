"""Ending a gloo run without an abort or a hang: let the collective threads go idle, then destroy the group.

Asynchronous gloo collectives (ZeRO-3 prefetches, FSDP's all-gathers, DDP's bucket all-reduces) are released by
a gloo worker thread once they complete, and releasing their tensors takes the GIL. Two failures follow:

- if that release happens while Python is finalizing, the thread's GIL request makes CPython ``pthread_exit`` it
  from inside ``ProcessGroupGloo::runLoop``; the forced unwind meets a frame that may not unwind and the process
  aborts with "terminate called without an active exception" (seen with ZeRO-3 and FSDP2 on CPU);
- if the last reference to the process group is dropped (with the GIL held) during such a release, the group's
  destructor joins the worker thread while the thread waits for the GIL: a deadlock.

``dist.destroy_process_group`` alone does not stop the threads while a model or mesh still references the group.
What helps is that the workers are idle whenever the group object can die: wait for every collective to
complete (a barrier, when all processes are known to get there), give the workers a moment without the GIL to
release what they hold, then destroy the group. ``register`` does the same (without the barrier: a process
may be leaving early after an error) in an ``atexit`` hook, i.e. before the interpreter starts finalizing.
"""

from __future__ import annotations

import atexit
import time

import torch.distributed as dist

#: Time given to the gloo workers, GIL released, to drop the collectives they just completed.
SETTLE_SECONDS = 0.1

_registered = False


def quiesce_and_destroy(barrier: bool) -> None:
    """Destroy the default process group once no collective is in flight (a no-op without one)."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    if barrier and dist.get_world_size() > 1:
        dist.barrier()
    time.sleep(SETTLE_SECONDS)
    dist.destroy_process_group()


def _at_exit() -> None:
    quiesce_and_destroy(barrier=False)


def register() -> None:
    """Install the ``atexit`` hook once per process."""
    global _registered
    if not _registered:
        atexit.register(_at_exit)
        _registered = True
