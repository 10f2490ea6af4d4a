"""Start a Python program as several local processes of one `jax.distributed` program, with hard limits.

Each process gets one CPU device (unless asked for more), the coordinator on 127.0.0.1 at a free port,
``JAX_NUM_PROCESSES``/``JAX_PROCESS_ID`` and this repository on ``PYTHONPATH``. Every process is killed
at the deadline, so a test never hangs; what each printed and its exit code come back.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class Finished:
    returncode: int | None   # None: killed at the deadline
    output: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_processes(script: str, n: int = 2, *, args=(), devices: int = 1, timeout: float = 240,
                  env: dict | None = None, cwd=ROOT) -> list[Finished]:
    """Run ``script`` (Python source) as ``n`` processes; their exit codes and outputs, in process order."""
    port = free_port()
    base = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu",
            "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
            "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}", "JAX_NUM_PROCESSES": str(n), **(env or {})}
    procs = [subprocess.Popen([sys.executable, "-c", script, *map(str, args)], cwd=cwd,
                              env={**base, "JAX_PROCESS_ID": str(i)}, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in range(n)]
    deadline = time.monotonic() + timeout
    results = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            results.append(Finished(p.returncode, out))
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
            results.append(Finished(None, out))
    return results


def report(results: list[Finished]) -> str:
    """Every process's exit code and the end of its output, for an assertion message."""
    return "\n".join(f"--- process {i}: exit {r.returncode}\n{r.output[-3000:]}" for i, r in enumerate(results))
