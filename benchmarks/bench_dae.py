"""DAEs: ROBER in mass-matrix form (``y3 = 1 - y1 - y2`` algebraic) with sciml's DAE solvers, beside the
same problem as an ODE (sciml Rodas5P, scipy Radau).

scipy has no DAE solver, so the peer is scipy's Radau on the ODE form; the DAE rows show what the
algebraic form costs against the ODE form in sciml itself. Error: the final state (t = 1e5) against
the stored Radau@1e-12 reference of ``tests/solvers/stiff_references.json``, ``max_i |y_i - ref_i| /
(|ref_i| + floor_i)``. sciml runs are jitted steady-state calls (after compile; compile printed
separately); medians of interleaved repeats (``benchmarks/_timing.py``). These rows run the XLA loop
(``backend="jax"``), the ODE row too, so that they compare methods, not backends.

A second table runs two index-1 DAEs of the Bari test set (``tests/solvers/dae_problems.py``): the
transistor amplifier (singular tridiagonal ``M``, t in [0, 0.2]) and the chemical Akzo Nobel problem
(``M = diag(1, 1, 1, 1, 1, 0)``, t in [0, 180]), with Rodas5P, RadauIIA5 and BDF at the same ``rtol``
(``atol = rtol * floor``). Error: the final state against the test set's published reference, the same
mixed relative norm. There is no peer row: scipy has no DAE solver and these are not ODEs.

A third table runs Rodas5P on ROBER-DAE and the two test-set problems with both backends that serve a
mass matrix, the generated C kernel (``backend="c"``, an XLA custom call inside the same jitted
program) against the XLA loop (``backend="jax"``): time, error, steps, and the ratio c / jax.

    python benchmarks/bench_dae.py [--repeats 5] [--rtol 1e-6]
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
from scipy.integrate import solve_ivp

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import sciml  # noqa: E402
from benchmarks._timing import compiled, interleaved_medians, table  # noqa: E402
from sciml import solvers as S  # noqa: E402
from tests.solvers.dae_problems import DAE_PROBLEMS  # noqa: E402
from tests.solvers.stiff_problems import PROBLEMS, reference, relative_error  # noqa: E402

ROBER = PROBLEMS["rober"]
M = np.diag([1.0, 1.0, 0.0])


def rober_dae(t, y, k):
    return jnp.stack([-k[0] * y[0] + k[2] * y[1] * y[2], k[0] * y[0] - k[2] * y[1] * y[2] - k[1] * y[1] ** 2,
                      y[0] + y[1] + y[2] - 1.0])


def _ours(f, solver, rtol, mass):
    floor = jnp.asarray(ROBER.floor)

    def run(y0, k):
        sol = sciml.solve(f, y0, (0.0, ROBER.t1), args=k, solver=solver, rtol=rtol, atol=rtol * floor,
                          mass_matrix=mass, max_steps=100_000, backend="jax")
        return sol.ys[-1], sol.stats["naccept"]

    return jax.jit(run)


def _testset(problem, solver, rtol):
    def run(y0):
        sol = sciml.solve(problem.f, y0, (0.0, problem.t1), solver=solver, rtol=rtol,
                          atol=rtol * jnp.asarray(problem.floor), mass_matrix=problem.mass_matrix, init=problem.init,
                          max_steps=100_000, backend="jax", throw=False)
        return sol.ys[-1], sol.stats["naccept"], sol.status

    return jax.jit(run)


def testset_table(rtol: float, repeats: int) -> str:
    """Time and error of Rodas5P, RadauIIA5 and BDF on the test set's transistor amplifier and Akzo Nobel."""
    rows, calls = [], []
    for problem in DAE_PROBLEMS.values():
        for name, solver in (("Rodas5P", S.Rodas5P()), ("RadauIIA5", S.RadauIIA5()), ("BDF", S.BDF())):
            y0 = jnp.asarray(problem.y0)
            fn, seconds = compiled(_testset(problem, solver, rtol), y0)
            y, steps, status = fn(y0)
            rows.append([f"{problem.name} {name}", relative_error(y, problem.reference, problem.floor), int(steps),
                         int(status), seconds])
            calls.append((fn, (y0,)))
    times = interleaved_medians(calls, repeats)
    out = [[r[0], f"{r[1]:.1e}", r[2], r[3], f"{t * 1e3:.2f}ms", f"{r[4]:.1f} s"] for r, t in zip(rows, times)]
    return (f"Bari test-set DAEs to t1, rtol = {rtol:g}, atol = rtol * floor; no peer (scipy has no DAE solver)\n"
            + table(["problem / method", "error", "steps", "status", "time", "compile"], out, [20, 9, 7, 6, 10, 9]))


def _rodas(f, mass, init, t1, floor, rtol, backend):
    def run(y0, args):
        sol = sciml.solve(f, y0, (0.0, t1), args=args, solver=S.Rodas5P(), rtol=rtol, atol=rtol * jnp.asarray(floor),
                          mass_matrix=mass, init=init, max_steps=100_000, backend=backend, throw=False)
        return sol.ys[-1], sol.stats["naccept"], sol.status

    return jax.jit(run)


def kernel_table(rtol: float, repeats: int) -> str:
    """Rodas5P on the DAEs with ``backend="c"`` (the generated kernel) and ``"jax"`` (the XLA loop)."""
    cases = [("ROBER-DAE", rober_dae, M, "solve", ROBER.t1, ROBER.floor, ROBER.y0, ROBER.args, reference("rober"))]
    cases += [(p.name, p.f, p.mass_matrix, p.init, p.t1, p.floor, p.y0, None, p.reference)
              for p in DAE_PROBLEMS.values()]
    rows, calls = [], []
    for name, f, mass, init, t1, floor, y0, args, ref in cases:
        inputs = (jnp.asarray(y0), None if args is None else jnp.asarray(args))
        for backend in ("c", "jax"):
            fn, seconds = compiled(_rodas(f, mass, init, t1, floor, rtol, backend), *inputs)
            y, steps, status = fn(*inputs)
            rows.append([f"{name} {backend}", relative_error(y, ref, floor), int(steps), int(status), seconds])
            calls.append((fn, inputs))
    times = interleaved_medians(calls, repeats)
    out = [[r[0], f"{r[1]:.1e}", r[2], r[3], f"{t * 1e3:.2f}ms", f"{t / times[i - i % 2]:.2f}x" if i % 2 else "1.00x",
            f"{r[4]:.1f} s"] for i, (r, t) in enumerate(zip(rows, times))]
    return (f"Rodas5P with a mass matrix, backend c (generated kernel) vs jax (XLA loop), rtol = {rtol:g}, "
            f"atol = rtol * floor; ratio: jax / c\n"
            + table(["problem / backend", "error", "steps", "status", "time", "jax / c", "compile"], out,
                    [20, 9, 7, 6, 10, 8, 9]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rtol", type=float, default=1e-6)
    opts = parser.parse_args(argv)
    rtol, y0, k, ref = opts.rtol, jnp.asarray(ROBER.y0), jnp.asarray(ROBER.args), reference("rober")
    cases = [("Rodas5P (DAE)", rober_dae, S.Rodas5P(), M), ("RadauIIA5 (DAE)", rober_dae, S.RadauIIA5(), M),
             ("BDF (DAE)", rober_dae, S.BDF(), M), ("Rodas5P (ODE)", ROBER.f, S.Rodas5P(), None)]
    rows, calls = [], []
    for name, f, solver, mass in cases:
        fn, seconds = compiled(_ours(f, solver, rtol, mass), y0, k)
        y, steps = fn(y0, k)
        rows.append([name, relative_error(y, ref, ROBER.floor), int(steps), seconds])
        calls.append((fn, (y0, k)))

    def scipy_radau():
        return solve_ivp(lambda t, y: ROBER.f(t, y, ROBER.args, xp=np), (0.0, ROBER.t1), ROBER.y0, method="Radau",
                         rtol=rtol, atol=rtol * ROBER.floor)

    sp = scipy_radau()
    calls.append((scipy_radau, ()))
    times = interleaved_medians(calls, opts.repeats)
    peer = times[-1]
    out = [[r[0], f"{r[1]:.1e}", r[2], f"{t * 1e3:.2f}ms", f"{t / peer:.2f}x", f"{r[3]:.1f} s"]
           for r, t in zip(rows, times)]
    out.append(["scipy Radau (ODE)", f"{relative_error(sp.y[:, -1], ref, ROBER.floor):.1e}", sp.t.size - 1,
                f"{peer * 1e3:.2f}ms", "1.00x", "-"])
    print(f"ROBER to t = 1e5, rtol = {rtol:g}, atol = rtol * floor; jax {jax.__version__}")
    print(table(["method", "error", "steps", "time", "vs scipy", "compile"], out, [20, 9, 7, 10, 9, 9]))
    print()
    print(testset_table(rtol, opts.repeats))
    print()
    print(kernel_table(rtol, opts.repeats))


if __name__ == "__main__":
    main()
