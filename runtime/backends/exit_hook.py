"""Destroy the default process group before the interpreter finalizes (an ``atexit`` hook).

ZeRO-3 and FSDP issue asynchronous gloo collectives and drop their handles; the last reference to such a
collective (and to the tensors it holds) is then released by a gloo worker thread. If that happens while
Python is finalizing, the thread's request for the GIL makes CPython call ``pthread_exit`` on it, the forced
unwind meets a C++ frame that may not unwind (``ProcessGroupGloo::runLoop``), and the process aborts with
"terminate called without an active exception". Destroying the group in an ``atexit`` hook joins those
threads while Python still runs, so a script that never calls ``end_training`` still ends cleanly.
"""

from __future__ import annotations

import atexit

import torch.distributed as dist

_registered = False


def destroy_process_group_at_exit() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def register() -> None:
    """Install the hook once per process."""
    global _registered
    if not _registered:
        atexit.register(destroy_process_group_at_exit)
        _registered = True
