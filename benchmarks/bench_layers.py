"""sciml layers against the same network written as plain `jax.numpy` code.

Workload: one training step's worth of work, the loss and its gradient with respect to all
parameters (forward + backward), under `jax.jit`. Both sides get the same parameter values and data
in one process; each is compiled and warmed up, then timed as the median over repeats of the mean of
several calls, each call waited for with `block_until_ready`. Repeats of the two sides are
interleaved so that drift in the machine's speed affects both alike.

The claim checked: sciml's layers cost nothing at run time (ratio sciml / plain <= 1.1).

    python benchmarks/bench_layers.py [--repeats 30]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

import sciml  # noqa: F401  (turns on x64 for the float64 workload)
from sciml import layers as L


class Workload(NamedTuple):
    name: str
    sizes: tuple[int, ...]
    batch: int
    dtype: object


WORKLOADS = [
    Workload("MLP 2-64-64-2 tanh", (2, 64, 64, 2), 256, jnp.float32),
    Workload("MLP 2-64-64-2 tanh f64", (2, 64, 64, 2), 256, jnp.float64),
    Workload("MLP 32-512x4-32 tanh", (32, 512, 512, 512, 512, 32), 1024, jnp.float32),
]


def plain_mlp(params: list[tuple[jax.Array, jax.Array]], x: jax.Array) -> jax.Array:
    """The network by hand: tanh hidden layers, linear output."""
    for weight, bias in params[:-1]:
        x = jnp.tanh(x @ weight + bias)
    weight, bias = params[-1]
    return x @ weight + bias


def mse_step(apply: Callable) -> Callable:
    """``(params, x, y) -> (loss, grads)``, jitted."""
    return jax.jit(jax.value_and_grad(lambda p, x, y: jnp.mean((apply(p, x) - y) ** 2)))


def compiled(step: Callable, *args) -> tuple[Callable, float]:
    """The compiled executable of ``step`` for ``args`` and the seconds that tracing + compiling took."""
    start = time.perf_counter()
    executable = step.lower(*args).compile()
    return executable, time.perf_counter() - start


def time_call(fn: Callable, args: tuple, number: int) -> float:
    """Mean seconds per call over ``number`` calls, each waited for."""
    start = time.perf_counter()
    for _ in range(number):
        jax.block_until_ready(fn(*args))
    return (time.perf_counter() - start) / number


def calls_per_repeat(fn: Callable, args: tuple, target_seconds: float = 0.02) -> int:
    """Enough calls that one repeat takes about ``target_seconds`` (tiny workloads need many)."""
    return max(1, int(target_seconds / max(time_call(fn, args, 3), 1e-7)))


def run_workload(workload: Workload, repeats: int) -> dict:
    model = L.MLP(workload.sizes[0], workload.sizes[-1], workload.sizes[1], len(workload.sizes) - 2,
                  act="tanh")
    params, _ = model.init(jax.random.key(0), workload.dtype)
    plain_params = [(params[name]["weight"], params[name]["bias"]) for name in model.names]
    kx, ky = jax.random.split(jax.random.key(1))
    x = jax.random.normal(kx, (workload.batch, workload.sizes[0]), workload.dtype)
    y = jax.random.normal(ky, (workload.batch, workload.sizes[-1]), workload.dtype)

    plain, plain_compile = compiled(mse_step(plain_mlp), plain_params, x, y)
    ours, ours_compile = compiled(mse_step(model), params, x, y)
    loss_plain, _ = plain(plain_params, x, y)
    loss_ours, _ = ours(params, x, y)
    if not jnp.allclose(loss_plain, loss_ours, rtol=1e-5):
        raise AssertionError(f"{workload.name}: the two networks disagree ({loss_plain} vs {loss_ours}).")

    number = calls_per_repeat(plain, (plain_params, x, y))
    for fn, args in ((plain, (plain_params, x, y)), (ours, (params, x, y))):
        time_call(fn, args, number)  # warm-up
    plain_times, our_times = [], []
    for _ in range(repeats):
        plain_times.append(time_call(plain, (plain_params, x, y), number))
        our_times.append(time_call(ours, (params, x, y), number))
    plain_median, our_median = statistics.median(plain_times), statistics.median(our_times)
    return {"workload": workload.name, "batch": workload.batch, "plain": plain_median,
            "sciml": our_median, "ratio": our_median / plain_median,
            "plain_compile": plain_compile, "sciml_compile": ours_compile}


def format_table(rows: list[dict]) -> str:
    header = (f"{'workload (loss + grad, jit)':<28} {'batch':>6} {'plain jnp':>11} {'sciml':>11} "
              f"{'ratio':>6} {'compile plain':>14} {'compile sciml':>14}")
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r['workload']:<28} {r['batch']:>6} {r['plain'] * 1e6:>9.1f}us "
                     f"{r['sciml'] * 1e6:>9.1f}us {r['ratio']:>6.3f} {r['plain_compile'] * 1e3:>12.0f}ms "
                     f"{r['sciml_compile'] * 1e3:>12.0f}ms")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    """Run every workload, print the table, and return its rows (for `benchmarks/run.py`)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30, help="timed repeats per workload (median)")
    args = parser.parse_args(argv)
    print(f"sciml layers vs plain jax.numpy on {jax.devices()[0].device_kind} (jax {jax.__version__})")
    rows = [run_workload(workload, args.repeats) for workload in WORKLOADS]
    print(format_table(rows))
    worst = max(r["ratio"] for r in rows)
    verdict = "holds" if worst <= 1.10 else "FAILS"
    print(f"claim: sciml / plain <= 1.10 -> {verdict} (worst ratio {worst:.3f})")
    return rows


if __name__ == "__main__":
    main()
