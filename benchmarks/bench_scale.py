"""Scale: what runs beyond one memory (streamed ensembles) and beyond one process.

Streaming memory (`streaming_memory`): a reduced ensemble, ``solve_ensemble(..., batch_size=k,
reduce=MeanVar())``, must need memory constant in the number of trajectories N and linear in ``k``,
while the un-reduced `EnsembleSolution` grows as N. Workload: a damped oscillator ``x'' = -w^2 x -
0.1 x'`` with one frequency per trajectory, Tsit5 at rtol=atol=1e-6 over [0, 5], 5 saved times, the
mean and variance of the saved states (the C kernel by default: the fastest CPU backend). Each point
runs in a fresh process: a warm-up solve of one chunk compiles everything, the peak-RSS counter is reset
(Linux ``/proc/self/clear_refs``), then the measured solve runs; "working" is its peak RSS above the RSS
before it. The inputs are one float64 frequency per trajectory (8 B/trajectory, the user's array) and a
broadcast initial state (no memory). The "generated inputs" rows pass no arrays: ``inputs=`` makes each
chunk's states and frequencies from its indices just before its solve, so the whole run, inputs included,
needs memory constant in N.

    python benchmarks/bench_scale.py                 # N = 1e5, 1e6, 1e7 and k = 4096 .. 262144 (~4 min on 2 cores)
    python benchmarks/bench_scale.py --quick         # N = 1e5, 1e6 only
    python benchmarks/bench_scale.py --backend jax --quick --n-for-k 2.6e5   # the vmapped XLA loop (slower on the CPU)
    python benchmarks/bench_scale.py --only processes   # 1 vs 2 processes (benchmarks/_processes_scale.py, ~3 min)
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys

if __package__ in (None, ""):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

ROOT = pathlib.Path(__file__).resolve().parents[1]

#: one measurement, run as ``python -c`` in a fresh process; prints one JSON line
STREAM_POINT = r"""
import json, sys, time
import numpy as np, jax.numpy as jnp, sciml
from sciml.ensemble import MeanVar

n, k, backend, source = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]

def oscillator(t, y, w):
    return jnp.stack([y[1], -w * w * y[0] - 0.1 * y[1]])

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    raise RuntimeError(field)

def generate(i):                # inputs=: a chunk's states and frequencies from its indices (jitted)
    return jnp.broadcast_to(jnp.array([1.0, 0.0]), (i.shape[0], 2)), 0.5 + 1.5 * i / (n - 1)

def problem(n, source=source):
    common = dict(f=oscillator, t_span=(0.0, 5.0), saveat=np.linspace(0.0, 5.0, 5), rtol=1e-6, atol=1e-6,
                  backend=backend)
    if source == "generated":
        return dict(common, y0s=None, inputs=generate, n_trajectories=n)
    return dict(common, y0s=np.broadcast_to(np.array([1.0, 0.0]), (n, 2)), args=np.linspace(0.5, 2.0, n))

warm = sciml.solve_ensemble(**problem(k), batch_size=k, reduce=MeanVar())          # compiles everything
whole = sciml.solve_ensemble(**problem(64, "given"))
per_trajectory = sum(np.asarray(x).nbytes for x in __import__("jax").tree_util.tree_leaves(whole)) / 64
inputs = problem(n)
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")                                                                 # reset the peak RSS
before = rss("VmRSS:")
start = time.perf_counter()
result = sciml.solve_ensemble(**inputs, batch_size=k, reduce=MeanVar())
seconds = time.perf_counter() - start
assert result.value.count == n and result.success
print(json.dumps(dict(n=n, k=k, seconds=seconds, working=rss("VmHWM:") - before, before=before,
                      inputs=inputs["args"].nbytes if source == "given" else 0, unreduced=per_trajectory * n,
                      source=source)))
"""


def _measure(n: int, k: int, backend: str, source: str = "given") -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-c", STREAM_POINT, str(n), str(k), backend, source], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=1800)
    if run.returncode != 0:
        raise RuntimeError(run.stderr)
    return json.loads(run.stdout.strip().splitlines()[-1])


def _mb(x: float) -> str:
    return f"{x / 2**20:9.1f}"


def _row(p: dict) -> str:
    return (f"{p['n']:>10.0e} {p['k']:>8d} {_mb(p['working'])} {_mb(p['inputs'])} "
            f"{_mb(p['working'] + p['inputs'])} {_mb(p['unreduced'])} {p['seconds']:8.1f} "
            f"{p['seconds'] / p['n'] * 1e6:7.2f}")


HEADER = (f"{'N':>10} {'k':>8} {'work MB':>9} {'inputs':>9} {'total':>9} {'unreduced':>9} {'seconds':>8} "
          f"{'us/traj':>7}\n" + "-" * 78)


def streaming_memory(backend: str = "c", quick: bool = False, n_for_k: int = 10**6) -> list[dict]:
    """Peak working memory of a reduced ensemble against N (k fixed) and against k (N fixed)."""
    print(f"streamed ensemble, reduce=MeanVar(), backend={backend!r}: working memory (peak RSS above the RSS "
          f"before the solve, inputs made and programs compiled), the inputs (the user's arrays, 8 B/trajectory, "
          f"held before the solve), the size the un-reduced EnsembleSolution would have (MB)")
    sizes = [10**5, 10**6] if quick else [10**5, 10**6, 10**7]
    k = 16384
    print("constant in N (k = 16384):\n" + HEADER)
    by_n = []
    for n in sizes:
        by_n.append(_measure(n, k, backend))
        print(_row(by_n[-1]), flush=True)
    print("generated inputs (`inputs=`, each chunk's states and frequencies made from its indices just before "
          "its solve; nothing held but a chunk), constant in N including the inputs (k = 16384):\n" + HEADER)
    generated = []
    for n in sizes:
        generated.append(_measure(n, k, backend, "generated"))
        print(_row(generated[-1]), flush=True)
    print(f"linear in k (N = {n_for_k:.0e}):\n" + HEADER)
    by_k = []
    for kk in [size for size in (4096, 16384, 65536, 262144) if size <= n_for_k]:
        by_k.append(_measure(n_for_k, kk, backend))
        print(_row(by_k[-1]), flush=True)
    first, last = by_n[0], by_n[-1]
    growth = (last["working"] - first["working"]) / (last["n"] - first["n"])
    per_k = (by_k[-1]["working"] - by_k[0]["working"]) / (by_k[-1]["k"] - by_k[0]["k"])
    per_traj_unreduced = last["unreduced"] / last["n"]
    rate = last["seconds"] / last["n"]
    made = (generated[-1]["working"] - generated[0]["working"]) / (generated[-1]["n"] - generated[0]["n"])
    print(f"working memory grows {growth:+.2f} B per trajectory of N (the un-reduced result: "
          f"{per_traj_unreduced:.0f} B) and {per_k:.0f} B per trajectory of k; with generated inputs the whole "
          f"run (inputs included) grows {made:+.2f} B per trajectory of N, against 8 B of given frequencies.")
    for n in (10**7, 10**8):
        working = last["working"] + max(growth, 0.0) * (n - last["n"])
        print(f"extrapolated to N = {n:.0e}: working {working / 2**20:.0f} MB + inputs {8 * n / 2**20:.0f} MB, "
              f"un-reduced {per_traj_unreduced * n / 2**30:.1f} GB, ~{rate * n / 60:.0f} min on this machine")
    return by_n + generated + by_k


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="c", choices=["c", "jax"])
    parser.add_argument("--quick", action="store_true", help="N up to 1e6 only")
    parser.add_argument("--n-for-k", type=float, default=1e6, help="N of the batch_size sweep")
    parser.add_argument("--only", choices=["memory", "processes"], help="one of the two measurements")
    args = parser.parse_args(argv)
    if args.only != "processes":
        streaming_memory(args.backend, args.quick, int(args.n_for_k))
    if args.only != "memory":   # 1 vs 2 processes: benchmarks/_processes_scale.py
        from benchmarks._processes_scale import processes_speedup
        processes_speedup()


if __name__ == "__main__":
    main()
