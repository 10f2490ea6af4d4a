"""Step-size controllers over a work-precision sweep: sciml's `PIController` (the default),
`IController` and `PIDController` against diffrax's default controller, all with Tsit5.

Problems (float64): Lotka-Volterra and Lorenz on t in [0, 10]; the spiral neural ODE
``dy/dt = MLP(y^3)`` (an MLP 2-64-64-2, tanh, with fixed random params) from ``y0 = (2, 0)``, also on
[0, 10] (on the demo's [0, 1.5] it takes 4 to 20 steps, too few for a ratio to mean much); a
20-dimensional linear system ``y' = A y`` (``A`` random with eigenvalues' real parts <= -0.1, fixed
seed) on [0, 10]. Tolerances: rtol = atol in {1e-3, ..., 1e-10}.

Measured per solve: the error over the span, ``max|y - ref| / max|ref|`` over 101 equally spaced save
times (each library's Tsit5 interpolant; the final state alone varies erratically with the tolerance
where errors of different steps cancel), against a reference (the matrix exponential for the linear
system, scipy's DOP853 at rtol = atol = 1e-13 otherwise), and the evaluations of ``f`` (sciml:
``stats["nfev"]``, which counts its first-step guess; diffrax: ``1 + 6`` per step, FSAL Tsit5, whose
first step of 0.01 costs no evaluation). The peer is diffrax's default, ``diffrax.PIDController(rtol,
atol)`` (integral control, ``icoeff=1``) with ``diffrax.Tsit5()``.

The ratio compares work at equal accuracy: sciml's evaluations at diffrax's error, interpolated in
log(nfev) against log(error) along sciml's sweep, over diffrax's evaluations (below 1: sciml needs
fewer; "-" where diffrax's error is outside the range of sciml's sweep). One step more or less moves a
ratio by several percent, so the summary averages over ``--variants`` initial states per problem (``y0``
scaled by 1, 1.02, 1.04, ...): the geometric mean and the worst of the ratios of every tolerance and
initial state. The table shows the first initial state. ``PIDController()`` with sciml's first-step
guess is diffrax's controller itself: its ratios (about 1) show what the measurement resolves.

Target: the default controller needs no more evaluations than diffrax's default at equal error
(geometric mean ratio <= 1 on every problem).

    python benchmarks/bench_controllers.py [--problems lv,lorenz,spiral,linear] [--variants 4]
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Callable, NamedTuple

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
from scipy.integrate import solve_ivp

if __package__ in (None, ""):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import sciml  # noqa: E402
from benchmarks._timing import table  # noqa: E402
from sciml import layers as L  # noqa: E402
from sciml import solvers as S  # noqa: E402

TOLS = tuple(10.0 ** -k for k in range(3, 11))
MAX_STEPS = 200_000

#: the sciml controllers compared, the default first
CONTROLLERS = {
    "PI (default)": S.PIController(),
    "I": S.IController(),
    "PID 0.3/0.4": S.PIDController(pcoeff=0.3, icoeff=0.4),
    "PI 0.02/0.8": S.PIController(beta=0.02, safety=0.8),
    "PID (diffrax's)": S.PIDController(),
}


class Problem(NamedTuple):
    name: str
    f: Callable                    # f(t, y, args), JAX
    t1: float
    args: object
    y0s: list[np.ndarray]          # initial states, the problem's own first
    references: list[np.ndarray]   # y at `save_times(t1)` from each, shape (101, n)


def lotka_volterra(t, y, p):
    return jnp.stack([p[0] * y[0] - p[1] * y[0] * y[1], p[2] * y[0] * y[1] - p[3] * y[1]])


def lorenz(t, y, p):
    return jnp.stack([p[0] * (y[1] - y[0]), y[0] * (p[1] - y[2]) - y[1], y[0] * y[1] - p[2] * y[2]])


SPIRAL_MODEL = L.MLP(2, 2, width=64, depth=2, act="tanh")


def spiral_node(t, y, params):
    return SPIRAL_MODEL(params, y ** 3)


def linear(t, y, a):
    return a @ y


def save_times(t1: float) -> np.ndarray:
    return np.linspace(0.0, t1, 101)


def _scipy_reference(f, y0, t1, args) -> np.ndarray:
    """y at `save_times` by scipy's DOP853 at rtol = atol = 1e-13, with the JAX field jitted."""
    field = jax.jit(lambda t, y: f(t, y, args))
    sol = solve_ivp(lambda t, y: np.asarray(field(t, y)), (0.0, t1), y0, method="DOP853", rtol=1e-13, atol=1e-13,
                    t_eval=save_times(t1))
    return sol.y.T


def _stable_matrix(n: int = 20, seed: int = 0) -> np.ndarray:
    """A random ``n x n`` matrix shifted so that its eigenvalues' real parts are at most -0.1: decaying
    oscillations over a range of time scales."""
    a = np.random.default_rng(seed).standard_normal((n, n)) / np.sqrt(n)
    return a - (np.max(np.linalg.eigvals(a).real) + 0.1) * np.eye(n)


def problems(names, variants: int = 1) -> list[Problem]:
    """The chosen problems, each from ``variants`` initial states."""
    def make(name, f, y0, t1, args, reference=_scipy_reference):
        y0s = [np.asarray(y0, float) * (1 + 0.02 * k) for k in range(variants)]
        return Problem(name, f, t1, args, y0s, [reference(f, y, t1, args) for y in y0s])

    def expm(f, y0, t1, a):
        return np.stack([scipy.linalg.expm(np.asarray(a) * t) @ y0 for t in save_times(t1)])

    out = []
    if "lv" in names:
        out.append(make("Lotka-Volterra", lotka_volterra, [1.0, 1.0], 10.0, jnp.array([1.5, 1.0, 3.0, 1.0])))
    if "lorenz" in names:
        out.append(make("Lorenz", lorenz, [1.0, 0.0, 0.0], 10.0, jnp.array([10.0, 28.0, 8.0 / 3.0])))
    if "spiral" in names:
        params, _ = SPIRAL_MODEL.init(jax.random.key(0), jnp.float64)
        out.append(make("spiral neural ODE", spiral_node, [2.0, 0.0], 10.0, params))
    if "linear" in names:
        a = _stable_matrix()
        out.append(make("linear 20-dim", linear, np.random.default_rng(1).standard_normal(a.shape[0]), 10.0,
                        jnp.asarray(a), expm))
    return out


class Sweep(NamedTuple):
    errors: list[float]    # per tolerance
    nfevs: list[int]


def sciml_sweeps(problem: Problem, controller) -> list[Sweep]:
    """sciml's sweep from each initial state (one compile: state and tolerance are traced values)."""
    ts = jnp.asarray(save_times(problem.t1))
    solve = jax.jit(lambda y0, args, tol: sciml.solve(problem.f, y0, (0.0, problem.t1), args=args, saveat=ts,
                                                      rtol=tol, atol=tol, controller=controller,
                                                      max_steps=MAX_STEPS, backend="jax"))
    sweeps = []
    for y0, ref in zip(problem.y0s, problem.references):
        sols = [solve(jnp.asarray(y0), problem.args, jnp.asarray(tol)) for tol in TOLS]
        sweeps.append(Sweep([error(s.ys, ref) for s in sols], [int(s.stats["nfev"]) for s in sols]))
    return sweeps


def diffrax_sweeps(problem: Problem) -> list[Sweep]:
    """diffrax's default controller's sweep from each initial state."""
    saveat = diffrax.SaveAt(ts=jnp.asarray(save_times(problem.t1)))

    @jax.jit
    def solve(y0, args, tol):
        sol = diffrax.diffeqsolve(diffrax.ODETerm(problem.f), diffrax.Tsit5(), 0.0, problem.t1, None, y0, args=args,
                                  saveat=saveat, stepsize_controller=diffrax.PIDController(rtol=tol, atol=tol),
                                  max_steps=MAX_STEPS)
        return sol.ys, 1 + 6 * sol.stats["num_steps"]

    sweeps = []
    for y0, ref in zip(problem.y0s, problem.references):
        sols = [solve(jnp.asarray(y0), problem.args, jnp.asarray(tol)) for tol in TOLS]
        sweeps.append(Sweep([error(ys, ref) for ys, _ in sols], [int(n) for _, n in sols]))
    return sweeps


def error(ys, reference) -> float:
    return float(np.max(np.abs(np.asarray(ys) - reference)) / np.max(np.abs(reference)))


def nfev_at(sweep: Sweep, target: float) -> float:
    """Evaluations at error ``target``, interpolated in log-log along ``sweep``; NaN outside its range."""
    x, y = np.log(np.asarray(sweep.errors)), np.log(np.asarray(sweep.nfevs, float))
    order = np.argsort(x)
    x, y = x[order], y[order]
    if not x[0] <= np.log(target) <= x[-1]:
        return float("nan")
    return float(np.exp(np.interp(np.log(target), x, y)))


def ratios(ours: Sweep, peer: Sweep) -> list[float]:
    """Per tolerance: our evaluations at the peer's error over the peer's evaluations."""
    return [nfev_at(ours, e) / n for e, n in zip(peer.errors, peer.nfevs)]


def run(names, controllers=CONTROLLERS, variants: int = 1) -> dict:
    """``{problem: {"diffrax": [Sweep per initial state], label: [Sweep per initial state]}}``."""
    results = {}
    for problem in problems(names, variants):
        results[problem.name] = {"diffrax": diffrax_sweeps(problem)}
        for label, controller in controllers.items():
            results[problem.name][label] = sciml_sweeps(problem, controller)
    return results


def summary(results: dict) -> dict:
    """``{problem: {label: (geometric mean, worst)}}`` of the ratios over tolerances and initial states."""
    out = {}
    for name, res in results.items():
        out[name] = {}
        for label in (k for k in res if k != "diffrax"):
            rs = np.asarray([r for ours, peer in zip(res[label], res["diffrax"]) for r in ratios(ours, peer)])
            rs = rs[np.isfinite(rs)]
            out[name][label] = (float(np.exp(np.mean(np.log(rs)))), float(np.max(rs)))
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", default="lv,lorenz,spiral,linear", help="comma-separated subset")
    parser.add_argument("--variants", type=int, default=4, help="initial states per problem in the summary")
    args = parser.parse_args(argv)
    results = run(args.problems.split(","), variants=args.variants)
    labels = list(CONTROLLERS)
    print(f"Tsit5, float64, rtol = atol; err: max over the span of |y - ref| / max|ref|; nfev; ratio: sciml's nfev "
          f"at diffrax's error / diffrax's (jax {jax.__version__}, diffrax {diffrax.__version__})")
    header = ["problem", "tol", "diffrax err", "nfev"]
    header += [x for label in labels for x in (f"{label} err", "nfev", "ratio")]
    rows = []
    for name, res in results.items():
        peer = res["diffrax"][0]
        per_label = {label: (res[label][0], ratios(res[label][0], peer)) for label in labels}
        for k, tol in enumerate(TOLS):
            row = [name if k == 0 else "", f"{tol:.0e}", f"{peer.errors[k]:.1e}", peer.nfevs[k]]
            for label in labels:
                ours, rs = per_label[label]
                row += [f"{ours.errors[k]:.1e}", ours.nfevs[k], "-" if np.isnan(rs[k]) else f"{rs[k]:.2f}"]
            rows.append(row)
    print(table(header, rows, [18, 6, 11, 6] + [w for label in labels for w in (len(label) + 4, 6, 6)]))
    summ = summary(results)
    print(f"\nnfev at equal error, sciml / diffrax's default: geometric mean (worst) over the tolerances and "
          f"{args.variants} initial state(s) per problem")
    rows = [[name] + [f"{g:.3f} ({w:.2f})" for g, w in (summ[name][label] for label in labels)] for name in summ]
    print(table(["problem"] + labels, rows, [18] + [max(len(label), 14) for label in labels]))
    over = [name for name in summ if summ[name][labels[0]][0] > 1]
    print(f"target: the default ({labels[0]}) needs no more evaluations than diffrax's default at equal error "
          f"(geometric mean <= 1 on every problem): {'met' if not over else 'NOT met on ' + ', '.join(over)}")
    return results


if __name__ == "__main__":
    main()
