"""Memory of a gradient through a solve as the number of steps grows 10x, for every sciml adjoint.

Workload: ``dy/dt = tanh(W y)`` with a 32-dimensional state and ``W`` the parameters (1024), Tsit5
with ``N`` fixed steps (``adaptive=False, dt0=T/N``, ``max_steps=N``: under ``jit`` buffers are sized
by ``max_steps``, so that is the number of steps a program is built for), loss ``|y(T)|^2``. Memory
is XLA's own account of the compiled loss-and-gradient (``jax.jit(...).lower(...).compile()
.memory_analysis()``: temporaries + outputs), the peak the program allocates, on the CPU as on a GPU.

Expected: Direct, Interpolating and Quadrature store every step (linear in N); Backsolve stores
nothing per step (flat); the checkpointed methods keep one state per interval of 100 steps and one
interval's record, so they grow only by a state per 100 steps (nearly flat).

    python benchmarks/bench_adjoint_memory.py
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import sciml  # noqa: E402
from benchmarks._timing import table  # noqa: E402
from sciml import adjoints as A  # noqa: E402

N_STATE = 32
T = 2.0
INTERVAL = 100  # steps per checkpoint interval


def methods(n_steps: int) -> dict:
    k = n_steps // INTERVAL
    return {
        "Direct": A.Direct(),
        "Interpolating": A.Interpolating(),
        "Quadrature": A.Quadrature(),
        "Backsolve": A.Backsolve(),
        f"Direct(checkpoints=N/{INTERVAL})": A.Direct(checkpoints=k),
        f"Interpolating(checkpoints=N/{INTERVAL})": A.Interpolating(checkpoints=k),
    }


def field(t, y, w):
    return jnp.tanh(w @ y)


def peak_bytes(adjoint, n_steps: int) -> int:
    def loss(w, y0):
        sol = sciml.solve(field, y0, (0.0, T), args=w, adaptive=False, dt0=T / n_steps, max_steps=n_steps,
                          adjoint=adjoint)
        return jnp.sum(sol.ys[-1] ** 2)

    w = jnp.asarray(np.random.default_rng(0).normal(size=(N_STATE, N_STATE)) / np.sqrt(N_STATE))
    y0 = jnp.ones(N_STATE)
    stats = jax.jit(jax.grad(loss)).lower(w, y0).compile().memory_analysis()
    return int(stats.temp_size_in_bytes + stats.output_size_in_bytes)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs=2, default=(1000, 10000))
    opts = parser.parse_args(argv)
    small, large = opts.steps
    rows, growth = [], {}
    for name in methods(small):
        a = peak_bytes(methods(small)[name], small)
        b = peak_bytes(methods(large)[name], large)
        growth[name] = b / a
        rows.append([name, f"{a / 2**20:.3f} MiB", f"{b / 2**20:.3f} MiB", f"{b / a:.2f}x"])
    print(f"peak memory of loss+gradient (XLA memory analysis), state {N_STATE}, {N_STATE ** 2} parameters, "
          f"Tsit5 fixed steps; N = {small} -> {large} ({large // small}x steps)")
    print(table(["method", f"N={small}", f"N={large}", "growth"], rows, [38, 12, 12, 8]))
    return growth


if __name__ == "__main__":
    main()
