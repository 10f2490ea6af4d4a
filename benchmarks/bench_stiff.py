"""Stiff solvers: a work-precision comparison on ROBER, HIRES and Van der Pol (mu = 1e3).

sciml's Rodas5P, Kvaerno5, BDF and RadauIIA5 against diffrax's Kvaerno5 and scipy's BDF, Radau and LSODA, on the
problems of ``tests/solvers/stiff_problems.py`` (float64, ``atol = rtol * floor``). Error: the final
state against the stored Radau@1e-12 reference, ``max_i |y_i - ref_i| / (|ref_i| + floor_i)``. Our
solves and diffrax's are timed as jitted steady-state calls (after compile; the compile time and the
first call of ``sciml.solve``, compile included, are printed separately): that is what a pipeline
calling the solve repeatedly pays. scipy is called as usual (numpy right-hand side, its own
finite-difference Jacobian). Medians of interleaved repeats (``benchmarks/_timing.py``).

"At equal error": for every peer run (time t, error e) we take the cheapest Rodas5P run, on a grid of
tolerances, whose error is <= e, and print its time over t; likewise RadauIIA5's grid against scipy's
Radau (the same algorithm, RADAU5).

``AutoSwitch()`` (Tsit5 <-> Rodas5P, what ``solve_ivp(method="LSODA")`` runs) is matched the same way
against scipy's LSODA, the automatic switcher it stands in for (``--only autoswitch`` runs just that).

DAE rows (``--only dae`` runs just them): ROBER in DAE form and the Bari test set's transistor amplifier
and chemical Akzo Nobel problem with Rodas5P, RadauIIA5 and BDF, time and error; they are
``benchmarks/bench_dae.py``'s tables, printed here too so that the stiff comparison is one command.

Targets (issue "Stiff solvers"): Rodas5P <= 1.0x scipy LSODA's time at equal or better error on ROBER
and Van der Pol, and <= 0.5x diffrax Kvaerno5's time at equal error; RadauIIA5 <= 0.1x scipy Radau's
time at equal or better error (issue "RadauIIA5").

    python benchmarks/bench_stiff.py [--repeats 5] [--only autoswitch|dae]
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from scipy.integrate import solve_ivp

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import sciml  # noqa: E402
from benchmarks._timing import compiled, first_call, interleaved_medians, ms, table  # noqa: E402
from tests.solvers.stiff_problems import PROBLEMS, reference, relative_error  # noqa: E402

NAMES = ("rober", "hires", "vdp")
TABLE_RTOLS = (1e-4, 1e-6, 1e-8)
#: Rodas5P's grid for the equal-error comparison (rtol is traced: one compile)
GRID = tuple(10.0 ** (-k / 2) for k in range(6, 25))
MAX_STEPS = 100_000


def _ours(problem, solver):
    floor = jnp.asarray(problem.floor)
    return jax.jit(lambda y0, args, rtol: sciml.solve(
        problem.f, y0, (0.0, problem.t1), args=args, solver=solver, rtol=rtol, atol=rtol * floor,
        max_steps=MAX_STEPS).ys[-1])


def _diffrax(problem):
    floor = jnp.asarray(problem.floor)
    term = diffrax.ODETerm(lambda t, y, a: problem.f(t, y, a))
    return jax.jit(lambda y0, args, rtol: diffrax.diffeqsolve(
        term, diffrax.Kvaerno5(), 0.0, problem.t1, None, y0, args=args, max_steps=MAX_STEPS,
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=rtol * floor)).ys[-1])


def _scipy(problem, method):
    f = lambda t, y: problem.f(t, y, problem.args, xp=np)  # noqa: E731
    return lambda y0, args, rtol: solve_ivp(f, (0.0, problem.t1), y0, method=method, rtol=rtol,
                                            atol=rtol * problem.floor).y[:, -1]


def _first_solve_call(problem, solver) -> float:
    """Seconds of the first `sciml.solve` call for this problem and solver (compile included)."""
    start = time.perf_counter()
    jax.block_until_ready(sciml.solve(problem.f, jnp.asarray(problem.y0), (0.0, problem.t1),
                                      args=jnp.asarray(problem.args), solver=solver, rtol=1e-6,
                                      atol=1e-6 * jnp.asarray(problem.floor), max_steps=MAX_STEPS).ys)
    return time.perf_counter() - start


def run_problem(name: str, repeats: int):
    """Rows of the table and the equal-error comparisons for one problem."""
    p = PROBLEMS[name]
    ref = reference(name)
    y0, args = jnp.asarray(p.y0), jnp.asarray(p.args)
    entries = {}   # label -> (fn, compile seconds or None, first call seconds or None)
    for solver in (sciml.solvers.Rodas5P(), sciml.solvers.Kvaerno5(), sciml.solvers.BDF(), sciml.solvers.RadauIIA5()):
        first = _first_solve_call(p, solver)
        fn, compile_s = compiled(_ours(p, solver), y0, args, jnp.asarray(1e-6))
        entries[f"sciml {type(solver).__name__}"] = (fn, compile_s, first)
    first = first_call(_diffrax(p), y0, args, jnp.asarray(1e-6))
    fn, compile_s = compiled(_diffrax(p), y0, args, jnp.asarray(1e-6))
    entries["diffrax Kvaerno5"] = (fn, compile_s, first)
    for method in ("BDF", "Radau", "LSODA"):
        entries[f"scipy {method}"] = (_scipy(p, method), None, None)

    calls, keys = [], []
    for label, (fn, _, _) in entries.items():
        for rtol in TABLE_RTOLS:
            arg = (y0, args, jnp.asarray(rtol)) if label[:5] != "scipy" else (p.y0, p.args, rtol)
            calls.append((fn, arg))
            keys.append((label, rtol))
    for grid_label in ("sciml Rodas5P", "sciml RadauIIA5"):
        grid_fn = entries[grid_label][0]
        for rtol in GRID:
            calls.append((grid_fn, (y0, args, jnp.asarray(rtol))))
            keys.append((("grid", grid_label), rtol))
    times = interleaved_medians(calls, repeats)
    errors = [relative_error(fn(*arg), ref, p.floor) for fn, arg in calls]
    results = {key: (t, e) for key, t, e in zip(keys, times, errors)}

    rows = []
    for label, (_, compile_s, first) in entries.items():
        for rtol in TABLE_RTOLS:
            t, e = results[(label, rtol)]
            rows.append([name, label, f"{rtol:.0e}", f"{t * 1e3:.2f}ms", f"{e:.1e}",
                         "-" if compile_s is None else ms(compile_s), "-" if first is None else ms(first)])
    matched, radau = [], []
    for ours_label, peers, out in (("sciml Rodas5P", ("scipy LSODA", "diffrax Kvaerno5", "scipy BDF", "scipy Radau"),
                                    matched), ("sciml RadauIIA5", ("scipy Radau",), radau)):
        grid = sorted((results[(("grid", ours_label), r)] for r in GRID), key=lambda te: te[0])
        out += _equal_error(name, grid, peers, results)
    return rows, matched, radau


def autoswitch_vs_lsoda(name: str, repeats: int):
    """AutoSwitch's tolerance grid against scipy's LSODA at `TABLE_RTOLS`, at equal or better error."""
    p = PROBLEMS[name]
    ref = reference(name)
    y0, args = jnp.asarray(p.y0), jnp.asarray(p.args)
    ours, _ = compiled(_ours(p, sciml.solvers.AutoSwitch()), y0, args, jnp.asarray(1e-6))
    lsoda = _scipy(p, "LSODA")
    calls = ([(lsoda, (p.y0, p.args, rtol)) for rtol in TABLE_RTOLS]
             + [(ours, (y0, args, jnp.asarray(rtol))) for rtol in GRID])
    keys = [("scipy LSODA", rtol) for rtol in TABLE_RTOLS] + [("grid", rtol) for rtol in GRID]
    times = interleaved_medians(calls, repeats)
    results = {key: (t, relative_error(fn(*arg), ref, p.floor)) for key, t, (fn, arg) in zip(keys, times, calls)}
    grid = sorted((results[("grid", rtol)] for rtol in GRID), key=lambda te: te[0])
    return _equal_error(name, grid, ("scipy LSODA",), results)


def _equal_error(name, grid, peers, results):
    """For each peer run, the cheapest run of ``grid`` ((time, error) pairs) with error <= the peer's."""
    matched = []
    for peer in peers:
        for rtol in TABLE_RTOLS:
            t_peer, e_peer = results[(peer, rtol)]
            ours = next(((t, e) for t, e in grid if e <= e_peer), None)
            ratio = ours[0] / t_peer if ours else float("inf")
            matched.append([name, peer, f"{rtol:.0e}", f"{e_peer:.1e}", f"{t_peer * 1e3:.2f}ms",
                            f"{ours[1]:.1e}" if ours else "-", f"{ours[0] * 1e3:.2f}ms" if ours else "-",
                            f"{ratio:.3f}"])
    return matched


def main(argv: list[str] | None = None):
    """Print the work-precision table, the equal-error ratios and the verdicts; return the rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (median)")
    parser.add_argument("--only", choices=("all", "autoswitch", "dae"), default="all",
                        help="'autoswitch': only AutoSwitch against scipy LSODA; 'dae': only the DAE rows")
    args = parser.parse_args(argv)
    if args.only == "dae":
        return _dae_rows(args.repeats)
    print(f"Stiff work-precision, float64, on {jax.devices()[0].device_kind} (jax {jax.__version__}, "
          f"diffrax {diffrax.__version__})")
    switching = [row for name in NAMES for row in autoswitch_vs_lsoda(name, args.repeats)]
    print("\nAutoSwitch at equal or better error (cheapest run of its tolerance grid with error <= LSODA's):")
    print(table(["problem", "peer", "rtol", "peer error", "peer time", "AutoSw err", "AutoSwitch", "ratio"],
                switching, [7, 16, 6, 10, 10, 11, 10, 6]))
    print(f"AutoSwitch / scipy LSODA at equal error: worst {max(float(r[-1]) for r in switching):.3f}x, "
          f"best {min(float(r[-1]) for r in switching):.3f}x")
    if args.only == "autoswitch":
        return switching
    rows, matched, radau = [], [], []
    for name in NAMES:
        r, m, rr = run_problem(name, args.repeats)
        rows += r
        matched += m
        radau += rr
    print(table(["problem", "solver", "rtol", "time", "error", "compile", "first call"], rows,
                [7, 18, 6, 10, 8, 8, 10]))
    print("\nRadauIIA5 at equal or better error (cheapest run of its tolerance grid with error <= scipy Radau's):")
    print(table(["problem", "peer", "rtol", "peer error", "peer time", "Radau5 err", "RadauIIA5", "ratio"],
                radau, [7, 16, 6, 10, 10, 11, 9, 6]))
    print("\nRodas5P at equal or better error (cheapest run of its tolerance grid with error <= the peer's):")
    print(table(["problem", "peer", "rtol", "peer error", "peer time", "Rodas5P err", "Rodas5P", "ratio"],
                matched, [7, 16, 6, 10, 10, 11, 9, 6]))
    worst = {}
    for problem, peer, _, _, _, _, _, ratio in matched:
        key = (peer, problem)
        worst[key] = max(worst.get(key, 0.0), float(ratio))
    lsoda = max(worst[("scipy LSODA", p)] for p in ("rober", "vdp"))
    dfx = max(worst[("diffrax Kvaerno5", p)] for p in NAMES)
    print(f"target Rodas5P <= 1.0x scipy LSODA (ROBER, VdP): worst {lsoda:.3f}x -> "
          f"{'met' if lsoda <= 1.0 else 'NOT met'}")
    print(f"target Rodas5P <= 0.5x diffrax Kvaerno5 (all three): worst {dfx:.3f}x -> "
          f"{'met' if dfx <= 0.5 else 'NOT met'}")
    worst_radau = max(float(row[-1]) for row in radau)
    print(f"target RadauIIA5 <= 0.1x scipy Radau (all three): worst {worst_radau:.3f}x -> "
          f"{'met' if worst_radau <= 0.1 else 'NOT met'}")
    _dae_rows(args.repeats)
    return rows + matched + radau + switching


def _dae_rows(repeats: int):
    """The DAE rows: `bench_dae.py`'s tables (ROBER-DAE beside its ODE form and scipy Radau; the Bari
    amplifier and Akzo Nobel problems)."""
    from benchmarks import bench_dae

    print("\nDAEs (benchmarks/bench_dae.py):")
    return bench_dae.main(["--repeats", str(repeats)])


if __name__ == "__main__":
    main()
