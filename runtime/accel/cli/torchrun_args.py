"""The `torch.distributed.run` (torchrun) command line for a launch."""

from __future__ import annotations

from .settings import LaunchSettings

DEFAULT_MULTI_NODE_PORT = 29500


def torchrun_argv(s: LaunchSettings, target: str, target_args: list[str], module: bool) -> list[str]:
    """torchrun's arguments: processes per machine, rendezvous, then the script (or `-m module`) and its arguments.

    One machine without a port uses `--standalone` (a rendezvous on a free local port, so launches never
    collide); with a port, or on several machines, machine 0 hosts the rendezvous at main_process_ip:port.
    """
    argv = ["--nproc-per-node", str(s.num_processes // s.num_machines), "--max-restarts", "0"]
    if s.num_machines == 1 and s.main_process_port is None:
        argv.append("--standalone")
    else:
        host = s.main_process_ip or "127.0.0.1"
        if ":" in host:  # IPv6
            host = f"[{host}]"
        port = s.main_process_port or DEFAULT_MULTI_NODE_PORT
        argv += ["--nnodes", str(s.num_machines), "--node-rank", str(s.machine_rank),
                 "--rdzv-backend", s.rdzv_backend, "--rdzv-endpoint", f"{host}:{port}"]
    if module:
        argv.append("--module")
    return [*argv, target, *target_args]
