"""1 process against 2 (`sciml.distributed`, one CPU device each, coordinator on 127.0.0.1): an ensemble
on the C kernel and on the jax backend, and one data-parallel training step of a neural ODE.

Each configuration runs in fresh processes; a process warms every program up, then times ``repeats``
calls (median, each waited for, the processes in step through the calls' own collectives) and writes
what it computed, so that the 2-process results are compared with the 1-process ones (statuses and
states of every trajectory; the loss and gradient of the step). On a machine with fewer free cores
than processes the speed-up says nothing: the processes share the cores. The C kernel's OpenMP threads
are split between the processes (``OMP_NUM_THREADS`` = cores / processes), so both configurations use
the same cores.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import tempfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.processes import report, run_processes  # noqa: E402

#: one process of a measurement: ``argv = out_dir n_trajectories batch repeats``
POINT = r"""
import json, statistics, sys, time, os
import sciml
if int(os.environ["JAX_NUM_PROCESSES"]) > 1:
    sciml.distributed.initialize()
import jax, jax.numpy as jnp, numpy as np, optax
from sciml import layers as L

out, n, batch, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
me, count = jax.process_index(), jax.process_count()

def timed(fn):
    jax.block_until_ready(fn())
    walls, cpus = [], []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn())
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)

def lorenz(t, u, p):
    return jnp.stack([p[0] * (u[1] - u[0]), u[0] * (p[1] - u[2]) - u[1], u[0] * u[1] - p[2] * u[2]])

params = np.stack([np.full(n, 10.0), np.linspace(0.0, 28.0, n), np.full(n, 8.0 / 3.0)], axis=1)
y0s = np.array([1.0, 0.0, 0.0]) + 0.01 * (np.arange(n) % 100)[:, None]
found, seconds = {}, {}
for backend in ("c", "jax"):
    run = lambda: sciml.solve_ensemble(lorenz, y0s, (0.0, 1.0), args=params, backend=backend,
                                       saveat=np.linspace(0.0, 1.0, 11), rtol=1e-8, atol=1e-8)
    seconds[f"ensemble_{backend}"] = timed(lambda: run().ys)
    ens = run()
    found[f"{backend}_ys"] = sciml.distributed.to_host(ens.ys)
    found[f"{backend}_status"] = sciml.distributed.to_host(ens.status)

node = sciml.NeuralODE(L.MLP(2, 2, 32, 2, act="tanh"), (0.0, 1.0), saveat=(0.5, 1.0), rtol=1e-6, atol=1e-6)
theta, _ = node.init(jax.random.PRNGKey(0), jnp.float64)
rng = np.random.default_rng(0)
Y0 = rng.normal(size=(batch, 2))
TARGET = np.stack([np.cos(1.0) * Y0, np.cos(2.0) * Y0], 1)
rows = slice(me * batch // count, (me + 1) * batch // count)
data = (Y0, TARGET) if count == 1 else sciml.distributed.global_batch((Y0[rows], TARGET[rows]))
if count > 1:
    theta = sciml.distributed.replicate(theta)

def loss(theta, data):
    y0, target = data
    pred = jax.vmap(lambda y: node(theta, y))(y0)
    return jnp.mean((pred - target) ** 2)

step = jax.jit(jax.value_and_grad(loss))
seconds["training_step"] = timed(lambda: step(theta, data))
value, grads = step(theta, data)
found["loss"] = np.asarray(value)
found["grads"] = np.concatenate([np.asarray(g).ravel() for g in jax.tree_util.tree_leaves(grads)])
if me == 0:
    np.savez(f"{out}/found_{count}.npz", **found)
json.dump(seconds, open(f"{out}/seconds_{count}_{me}.json", "w"))
"""


def processes_speedup(n: int = 4096, batch: int = 256, repeats: int = 5, timeout: float = 1200) -> dict:
    """Print and return the 1- and 2-process times and the largest differences between their results."""
    with tempfile.TemporaryDirectory() as out:
        for count in (1, 2):
            threads = str(max(1, len(os.sched_getaffinity(0)) // count))   # the C kernel's OpenMP: a share each
            results = run_processes(POINT, count, args=[out, n, batch, repeats], timeout=timeout,
                                    env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": threads})
            if any(r.returncode != 0 for r in results):
                raise RuntimeError(f"the {count}-process run failed:\n{report(results)}")
        seconds = {c: [json.load(open(os.path.join(out, f"seconds_{c}_{me}.json"))) for me in range(c)]
                   for c in (1, 2)}
        found = {c: np.load(os.path.join(out, f"found_{c}.npz")) for c in (1, 2)}
        cores = len(os.sched_getaffinity(0))
        print(f"1 vs 2 processes (one CPU device each, gloo; this machine: {cores} cores). Ensemble: Lorenz, "
              f"N={n}, Tsit5 rtol=atol=1e-8, 11 saves. Training step: value_and_grad of a neural ODE "
              f"(MLP 2-32-32-2), batch {batch}, float64. Median of {repeats} calls after warm-up.")
        print("wall: median seconds of a call (the slower process); CPU: the busiest process's CPU seconds per "
              "call (all its threads), which a machine shared with other jobs distorts less")
        print(f"{'workload':<24}{'wall 1 proc':>12}{'2 procs':>10}{'ratio':>7}{'CPU 1 proc':>12}{'2 procs':>10}"
              f"{'ratio':>7}  equal?")
        rows = {}
        for key, label in (("ensemble_c", "ensemble, backend=c"), ("ensemble_jax", "ensemble, backend=jax"),
                           ("training_step", "training step")):
            (one, cpu_one), = [s[key] for s in seconds[1]]
            two, cpu_two = (max(s[key][k] for s in seconds[2]) for k in (0, 1))
            if key == "training_step":
                diff = max(abs(float(found[1]["loss"] - found[2]["loss"])),
                           float(np.max(np.abs(found[1]["grads"] - found[2]["grads"]))))
                same = f"loss and gradient within {diff:.1e}"
            else:
                backend = key.split("_")[1]
                statuses = np.array_equal(found[1][f"{backend}_status"], found[2][f"{backend}_status"])
                diff = float(np.max(np.abs(found[1][f"{backend}_ys"] - found[2][f"{backend}_ys"])))
                same = f"statuses {'equal' if statuses else 'DIFFER'}, states within {diff:.1e}"
            rows[key] = dict(one=one, two=two, cpu_one=cpu_one, cpu_two=cpu_two, difference=diff)
            print(f"{label:<24}{one * 1e3:>10.1f}ms{two * 1e3:>8.1f}ms{one / two:>6.2f}x"
                  f"{cpu_one * 1e3:>10.1f}ms{cpu_two * 1e3:>8.1f}ms{cpu_one / cpu_two:>6.2f}x  {same}")
        return rows
