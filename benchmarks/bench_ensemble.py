"""Ensembles: `sciml.solve_ensemble` on each available backend against diffrax's vmapped `diffeqsolve`.

Workloads, all in one process, each side compiled and warmed up first, then the median of ``--repeats``
timed calls (results waited for), the sides' repeats interleaved:

1. DiffEqGPU's Lorenz ensemble (Utkarsh et al. 2024, the benchmark DiffEqGPU.jl publishes):
   u0 = [1, 0, 0], sigma = 10, beta = 8/3, rho = linspace(0, 21, N), t in [0, 1], final state only,
   float32, Tsit5 with (a) fixed dt = 0.001 and (b) adaptive rtol = atol = 1e-8; N = 2^10 .. ``--max-n``.
2. The CPU targets: N = 10^4, adaptive rtol = atol = 1e-6, float64 (claims: ``c`` >= 5x faster than
   diffrax vmap, ``jax`` no slower than it).
3. With CuPy and a GPU: ``cupy`` against diffrax vmap on the same GPU at the largest N (claim: >= 50x),
   and against the arithmetic floor, FLOPs per step x steps x N over the FP32 rate that a CuPy FMA
   kernel measures on this GPU (claim: within 3x).

Every row also prints the largest difference of its final states from diffrax's.

    python benchmarks/bench_ensemble.py [--max-n 16384] [--repeats 5] [--c-max-n 65536]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, NamedTuple

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

import sciml
from sciml.kernel._cupy import cupy_or_error
from sciml.kernel._errors import BackendUnavailableError
from sciml.solvers import Tsit5
from sciml.solvers._tableaus_tsitouras import TSIT5


def lorenz(t, u, p):
    sigma, rho, beta = p[0], p[1], p[2]
    return jnp.stack([sigma * (u[1] - u[0]), u[0] * (rho - u[2]) - u[1], u[0] * u[1] - beta * u[2]])


#: arithmetic operations in one evaluation of `lorenz` (3 sub + 1 mul, 1 sub + 1 mul + 1 sub, 2 mul + 1 sub)
LORENZ_FLOPS = 10


class Mode(NamedTuple):
    name: str
    dtype: object
    adaptive: bool
    tol: float          # rtol = atol (adaptive)
    dt: float           # the fixed step (adaptive=False)


FIXED = Mode("fixed dt=1e-3 f32", np.float32, False, 0.0, 1e-3)
ADAPTIVE = Mode("adaptive 1e-8 f32", np.float32, True, 1e-8, 0.0)
CPU_TARGET = Mode("adaptive 1e-6 f64", np.float64, True, 1e-6, 0.0)


def ensemble(n: int, dtype):
    rho = np.linspace(0.0, 21.0, n)
    params = np.stack([np.full(n, 10.0), rho, np.full(n, 8.0 / 3.0)], axis=1).astype(dtype)
    return np.tile(np.array([1.0, 0.0, 0.0], dtype), (n, 1)), params


def available_backends() -> list[str]:
    backends = ["jax", "c"]
    try:
        cupy_or_error()
        backends.append("cupy")
    except BackendUnavailableError:
        pass
    return backends


# -- the two sides ------------------------------------------------------------------------------
def diffrax_runner(mode: Mode, n: int) -> Callable:
    """diffrax's recommended ensemble: `jax.vmap` of `diffeqsolve`, jitted."""
    if mode.adaptive:
        controller, dt0 = diffrax.PIDController(rtol=mode.tol, atol=mode.tol), None
    else:
        controller, dt0 = diffrax.ConstantStepSize(), mode.dt
    max_steps = int(round(1.0 / mode.dt)) + 1 if not mode.adaptive else 100_000

    @jax.jit
    def solve(y0s, params):
        def one(y0, p):
            sol = diffrax.diffeqsolve(diffrax.ODETerm(lorenz), diffrax.Tsit5(), 0.0, 1.0, dt0, y0, args=p,
                                      stepsize_controller=controller, saveat=diffrax.SaveAt(t1=True),
                                      max_steps=max_steps, throw=False)
            return sol.ys[-1]
        return jax.vmap(one)(y0s, params)

    y0s, params = (jnp.asarray(x) for x in ensemble(n, mode.dtype))
    return lambda: solve(y0s, params)


def sciml_runner(mode: Mode, n: int, backend: str) -> Callable:
    y0s, params = ensemble(n, mode.dtype)
    if backend == "cupy":
        cupy = cupy_or_error()
        y0s, params = cupy.asarray(y0s), cupy.asarray(params)
    elif backend == "jax":
        y0s, params = jnp.asarray(y0s), jnp.asarray(params)
    kw = dict(rtol=mode.tol, atol=mode.tol) if mode.adaptive else dict(adaptive=False, dt0=mode.dt)
    return lambda: sciml.solve_ensemble(lorenz, y0s, (0.0, 1.0), args=params, backend=backend, solver=Tsit5(),
                                        max_steps=100_000, **kw)


def wait(result):
    """Block until ``result`` (a JAX array, an `EnsembleSolution`, CuPy arrays) is computed; its final states."""
    final = result.y_final if isinstance(result, sciml.EnsembleSolution) else result
    if hasattr(final, "__cuda_array_interface__") and not isinstance(final, jax.Array):
        cupy_or_error().cuda.get_current_stream().synchronize()
        return final.get()
    return np.asarray(jax.block_until_ready(final))


def measure(runners: dict[str, Callable], repeats: int) -> dict[str, dict]:
    """First-call seconds (compile + run), median run seconds and final states of each runner."""
    out = {}
    for name, run in runners.items():
        start = time.perf_counter()
        final = wait(run())
        out[name] = {"first": time.perf_counter() - start, "samples": [], "final": final, "result": None}
    for _ in range(repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            result = run()
            wait(result)
            out[name]["samples"].append(time.perf_counter() - start)
            out[name]["result"] = result
    for entry in out.values():
        entry["median"] = statistics.median(entry["samples"])
    return out


# -- the arithmetic floor -----------------------------------------------------------------------------
def tsit5_step_flops(n: int, f_flops: int, adaptive: bool) -> int:
    """FLOPs of one Tsit5 step on an ``n``-state system: 6 evaluations of f and the stage sums (plus
    the error estimate and its norm when adaptive); step-size control is not counted."""
    tab = TSIT5

    def combination(weights):                # y + h * sum w_i k_i per component
        nz = sum(1 for w in weights if w != 0.0)
        return n * (2 * nz + 1)

    flops = 6 * f_flops + sum(combination(tab.a[i]) for i in range(1, len(tab.c)))
    if adaptive:
        flops += combination(tab.b_err) + 7 * n + 2
    return flops


def measured_fp32_rate(cupy) -> float:
    """FP32 FLOP/s of this GPU, from a kernel of independent FMA chains (2 FLOPs per FMA)."""
    kernel = cupy.RawKernel(r"""
    extern "C" __global__ void fma_chains(float* out, const int iters) {
        float a0 = threadIdx.x * 1e-7f, a1 = a0 + 1e-3f, a2 = a0 + 2e-3f, a3 = a0 + 3e-3f;
        float a4 = a0 + 4e-3f, a5 = a0 + 5e-3f, a6 = a0 + 6e-3f, a7 = a0 + 7e-3f;
        const float b = 0.999999f, c = 1e-7f;
        for (int i = 0; i < iters; ++i) {
            a0 = fmaf(a0, b, c); a1 = fmaf(a1, b, c); a2 = fmaf(a2, b, c); a3 = fmaf(a3, b, c);
            a4 = fmaf(a4, b, c); a5 = fmaf(a5, b, c); a6 = fmaf(a6, b, c); a7 = fmaf(a7, b, c);
        }
        out[blockIdx.x * blockDim.x + threadIdx.x] = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
    }""", "fma_chains")
    sms = cupy.cuda.Device().attributes["MultiProcessorCount"]
    blocks, threads, iters = sms * 16, 256, 1 << 14
    out = cupy.empty(blocks * threads, cupy.float32)
    kernel((blocks,), (threads,), (out, np.int32(iters)))
    cupy.cuda.get_current_stream().synchronize()
    times = []
    for _ in range(5):
        start, stop = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        kernel((blocks,), (threads,), (out, np.int32(iters)))
        stop.record()
        stop.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, stop) / 1e3)
    return 2 * 8 * iters * blocks * threads / statistics.median(times)


# -- reports ----------------------------------------------------------------------------------------
def row(label: str, name: str, entry: dict, reference: dict) -> str:
    ratio = reference["median"] / entry["median"]
    diff = float(np.max(np.abs(entry["final"].astype(np.float64) - reference["final"])))
    compile_s = max(entry["first"] - entry["median"], 0.0)
    return (f"{label:<24} {name:<8} {entry['median'] * 1e3:>11.2f} {ratio:>9.1f}x {compile_s:>9.2f}s "
            f"{diff:>10.2e}")


def header() -> str:
    line = f"{'workload':<24} {'side':<8} {'median ms':>11} {'speed-up':>10} {'compile':>10} {'max |diff|':>10}"
    return line + "\n" + "-" * len(line)


def diffeqgpu_table(max_n: int, repeats: int, backends: list[str], c_max_n: int) -> dict:
    print("Lorenz ensemble, the DiffEqGPU setup (speed-up = diffrax vmap time / this side's time)")
    print(header())
    results = {}
    n = 1 << 10
    while n <= max_n:
        for mode in (FIXED, ADAPTIVE):
            runners = {"diffrax": diffrax_runner(mode, n)}
            runners.update({b: sciml_runner(mode, n, b) for b in backends if b != "c" or n <= c_max_n})
            res = measure(runners, repeats)
            for name in runners:
                print(row(f"N=2^{n.bit_length() - 1} {mode.name}", name, res[name], res["diffrax"]))
            results[(n, mode.name)] = res
        n *= 2
    return results


def cpu_targets(repeats: int) -> None:
    n = 10_000
    print(f"\nCPU targets: Lorenz N={n}, {CPU_TARGET.name} (on {jax.devices()[0].platform})")
    print(header())
    res = measure({"diffrax": diffrax_runner(CPU_TARGET, n), "jax": sciml_runner(CPU_TARGET, n, "jax"),
                   "c": sciml_runner(CPU_TARGET, n, "c")}, repeats)
    for name in ("diffrax", "jax", "c"):
        print(row(f"N={n} {CPU_TARGET.name}", name, res[name], res["diffrax"]))
    c_ratio = res["diffrax"]["median"] / res["c"]["median"]
    jax_ratio = res["diffrax"]["median"] / res["jax"]["median"]
    print(f"claim c >= 5x diffrax: {c_ratio:.1f}x ({'met' if c_ratio >= 5 else 'NOT met'}); "
          f"claim jax no slower than diffrax: {jax_ratio:.2f}x ({'met' if jax_ratio >= 1 else 'NOT met'})")


def gpu_targets(results: dict, max_n: int) -> None:
    cupy = cupy_or_error()
    rate = measured_fp32_rate(cupy)
    print(f"\nGPU targets at N={max_n} ({cupy.cuda.runtime.getDeviceProperties(0)['name'].decode()}, "
          f"measured FP32 rate {rate / 1e12:.1f} TFLOP/s)")
    for mode in (FIXED, ADAPTIVE):
        res = results[(max_n, mode.name)]
        entry = res["cupy"]
        stats = entry["result"].stats
        steps = float(wait(stats["naccept"]).sum() + wait(stats["nreject"]).sum())
        floor = tsit5_step_flops(3, LORENZ_FLOPS, mode.adaptive) * steps / rate
        ratio = res["diffrax"]["median"] / entry["median"]
        print(f"{mode.name}: cupy {entry['median'] * 1e3:.2f} ms, diffrax vmap {res['diffrax']['median'] * 1e3:.2f} ms "
              f"-> {ratio:.1f}x (claim >= 50x: {'met' if ratio >= 50 else 'NOT met'}); arithmetic floor "
              f"{floor * 1e3:.2f} ms -> {entry['median'] / floor:.2f}x the floor (claim <= 3x: "
              f"{'met' if entry['median'] <= 3 * floor else 'NOT met'}); "
              f"{int(np.sum(wait(entry['result'].status) != 0))} of {max_n} trajectories failed")


def main(argv=None) -> None:
    backends = available_backends()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-n", type=int, default=(1 << 23) if "cupy" in backends else (1 << 14),
                        help="largest ensemble (a power of two); default 2^23 with a GPU, 2^14 without")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--c-max-n", type=int, default=1 << 16,
                        help="largest ensemble run on backend=\"c\" (the CPU), default 2^16")
    parser.add_argument("--skip-cpu-targets", action="store_true")
    args = parser.parse_args(argv)
    print(f"sciml {sciml.__version__}, diffrax {diffrax.__version__}, jax {jax.__version__} on "
          f"{jax.devices()[0].platform}; backends: {', '.join(backends)}\n")
    results = diffeqgpu_table(args.max_n, args.repeats, backends, args.c_max_n)
    if not args.skip_cpu_targets:
        cpu_targets(args.repeats)
    if "cupy" in backends:
        gpu_targets(results, 1 << (args.max_n.bit_length() - 1))


if __name__ == "__main__":
    main()
