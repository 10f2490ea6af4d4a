"""Lotka-Volterra UDE: learn the missing interaction terms from noisy data, then recover them as equations.

The truth is ``x' = a x - b x y``, ``y' = c x y - d y`` with ``(a, b, c, d) = (1.3, 0.9, 0.8, 1.8)``. We
know the growth and decay terms ``a x`` and ``-d y`` and let a small network stand in for everything
else, then fit the universal differential equation ``u' = (a x, -d y) + NN(u)`` to 31 noisy samples
(5% noise) on ``t in [0, 3]``:

1. **collocation** warm start: match the vector field to the derivative of a smoothing spline through
   the data (no ODE solve, thousands of steps per second);
2. **single shooting** with Adam, then **L-BFGS** polish: fit the solved trajectory to the data;
3. **symbolic recovery**: regress the network's output along the fitted trajectory on polynomials
   (STLSQ and forward selection), refit each sparse candidate to the data and keep the best by the
   extended BIC.

This is the recipe behind ``sciml demo ude`` and ``examples/lotka_volterra_ude.py``.
"""

from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sciml import layers as L
from sciml._atomic import atomic_write_bytes
from sciml.data import LV_PARAMS, lotka_volterra, lotka_volterra_rhs
from sciml.demos import _plot
from sciml.discovery import Equations, PolynomialLibrary, discover, trajectory_refit
from sciml.losses import collocation, single_shooting, smooth
from sciml.models import UDE
from sciml.train import Phase, fit

A, B, C, D = LV_PARAMS
#: training steps: (collocation, shooting with Adam, L-BFGS)
FULL_STEPS = (1500, 600, 200)
QUICK_STEPS = (200, 40, 0)
#: points of every plotted or analysed trajectory (on [0, 3] they include the sample times)
GRID = 301


def known(t, u, physics):
    """The physics we know: growth of the prey and decay of the predator."""
    return jnp.stack([A * u[..., 0], -D * u[..., 1]], axis=-1)


def run(out: str = "sciml-demo-ude", quick: bool = False, progress: bool = True, seed: int = 2,
        log=print) -> dict:
    """Train the UDE, recover the equations, write ``fit.png``, ``extrapolation.png``, ``loss.png`` and
    ``summary.json`` into ``out``, and return a summary (fit error, noise level, recovered
    coefficients, figure paths)."""
    _plot.require_matplotlib()  # before training, not after it
    started = time.perf_counter()
    data = lotka_volterra(seed=seed)
    ts, ys = data.ts, data.ys
    n_colloc, n_adam, n_lbfgs = QUICK_STEPS if quick else FULL_STEPS
    log(f"Lotka-Volterra UDE: {len(ts)} samples on t in [0, {ts[-1]:g}], noise std {np.round(data.noise_std, 4)}")

    ude = UDE(known, L.MLP(2, 2, width=8, depth=1, act="tanh"))
    params = ude.init(jax.random.key(seed), jnp.float64)

    t_c, u_c, du_c = smooth(ts, ys)
    warm = fit(lambda p: collocation(ude, p, t_c, u_c, du_c), params,
               [Phase(optax.adam(1e-2), n_colloc, "collocation")], progress=progress)
    phases = [Phase(optax.adam(3e-3), n_adam, "shooting (Adam)"), Phase(optax.lbfgs(), n_lbfgs, "L-BFGS")]
    shot = fit(lambda p: single_shooting(ude, p, ts, ys), warm.params, [p for p in phases if p.steps],
               progress=progress)
    params = shot.params

    def trajectory(t_end):
        """The UDE's solution on GRID points of [0, t_end] (one compiled solve for every t_end)."""
        sol = ude.solve(params, ys[0], (0.0, t_end), saveat=np.linspace(0.0, t_end, GRID), throw=False)
        return np.linspace(0.0, t_end, GRID), np.asarray(sol.ys), int(sol.status)

    dense_t, states, status = trajectory(float(ts[-1]))
    if status:
        raise RuntimeError(f"the trained UDE cannot be solved over the data (status {status}); train longer.")
    fitted = states[::(GRID - 1) // (len(ts) - 1)]                 # the grid contains every sample time
    rmse = np.sqrt(np.mean((fitted - ys) ** 2, axis=0))
    log(f"fit RMSE (x, y) = {np.round(rmse, 4)}; noise std = {np.round(data.noise_std, 4)}")

    missing = np.asarray(ude.network(params, states))
    library = PolynomialLibrary(("x", "y"), degree=2)
    refit = trajectory_refit(lambda t, u: known(t, u, None), library, ts, ys)
    found = discover(states, missing, library, refit=refit)
    log("recovered interaction terms (the network's part, refitted to the data, ± one standard error):")
    log("  " + str(found.equations).replace("\n", "\n  "))
    log(f"  (truth: dx/dt = -{B:g} x*y, dy/dt = {C:g} x*y)")
    coefficients = found.equations.coefficients
    whole = coefficients.copy()
    whole[library.names.index("x"), 0] += A
    whole[library.names.index("y"), 1] -= D
    log("the complete recovered model:\n  " + str(Equations(library, whole, found.equations.lhs)).replace("\n", "\n  "))

    long_t, long_ude, _ = trajectory(20.0)
    paths = _figures(out, data, (dense_t, states), (long_t, long_ude), library, coefficients,
                     {"collocation": warm.losses, "shooting (Adam)": shot.losses[:n_adam],
                      "L-BFGS": shot.losses[n_adam:]})
    elapsed = time.perf_counter() - started
    summary = {"rmse": rmse.tolist(), "noise_std": data.noise_std.tolist(), "equations": str(found.equations),
               "terms": [found.equations.terms(j) for j in range(2)], "seconds": elapsed, "seed": seed,
               "steps": [n_colloc, n_adam, n_lbfgs]}
    atomic_write_bytes(os.path.join(out, "summary.json"), json.dumps(summary, indent=2).encode(),
                       what="the UDE demo's summary.json")
    log(f"figures: {', '.join(paths)}; summary: {os.path.join(out, 'summary.json')}  ({elapsed:.0f} s)")
    return {"rmse": rmse, "noise_std": data.noise_std, "equations": found.equations, "discovery": found,
            "params": params, "figures": paths, "seconds": elapsed}


def _figures(out, data, fitted, extrapolated, library, coefficients, losses) -> list[str]:
    from scipy.integrate import solve_ivp

    ts, ys = data.ts, data.ys
    fig, ax = _plot.figure()
    for j, name in enumerate(("prey x", "predator y")):
        ax.plot(ts, ys[:, j], "o", ms=4, color=f"C{j}", label=f"data: {name}")
        ax.plot(fitted[0], fitted[1][:, j], "-", color=f"C{j}", label=f"UDE fit: {name}")
    ax.set_xlabel("t")
    ax.set_title("UDE fit to noisy data")
    ax.legend()
    paths = [_plot.save(fig, out, "fit.png")]

    long, ude_long = extrapolated

    def recovered(t, u):
        return np.asarray(known(t, u, None)) + np.asarray(library(u)) @ coefficients

    def blow_up(t, u):
        return np.max(np.abs(u)) - 1e3

    blow_up.terminal = True

    def reference(rhs, y0):
        """Solved with scipy's DOP853 (no compile), up to t = 20 or until the state leaves the plot."""
        return solve_ivp(rhs, (0.0, long[-1]), y0, t_eval=long, method="DOP853", rtol=1e-10, atol=1e-10,
                         events=blow_up).y.T

    truth = reference(lambda t, u: np.asarray(lotka_volterra_rhs(t, u)), data.clean[0])
    eq_long = reference(recovered, ys[0])
    fig, axes = _plot.figure(ncols=2)
    for j, (ax, name) in enumerate(zip(axes, ("prey x", "predator y"))):
        ax.plot(long, truth[:, j], "k-", lw=2, label="truth")
        ax.plot(long, ude_long[:, j], "--", color="C1", label="UDE (network)")
        ax.plot(long[:len(eq_long)], eq_long[:, j], ":", color="C2", lw=2, label="recovered equations")
        ax.axvspan(0.0, ts[-1], color="0.9", label="training data")
        ax.set_ylim(-0.1 * truth[:, j].max(), 1.4 * truth[:, j].max())  # the network may leave the plot
        ax.set_xlabel("t")
        ax.set_title(f"extrapolation to t = 20: {name}")
        ax.legend(fontsize=8)
    paths.append(_plot.save(fig, out, "extrapolation.png"))
    paths.append(_plot.loss_curve(losses, out, title="UDE training loss"))
    return paths
