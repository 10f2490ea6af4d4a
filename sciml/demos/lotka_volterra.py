"""Lotka-Volterra UDE: learn the missing interaction terms from noisy data, then recover them as equations.

The truth is ``x' = a x - b x y``, ``y' = c x y - d y`` with ``(a, b, c, d) = (1.3, 0.9, 0.8, 1.8)``. We
know the growth and decay terms ``a x`` and ``-d y`` and let a small network stand in for everything
else, then fit the universal differential equation ``u' = (a x, -d y) + NN(u)`` to 31 noisy samples
(5% noise) on ``t in [0, 3]``:

1. **collocation** warm start: match the vector field to the derivative of a smoothing spline through
   the data (no ODE solve, thousands of steps per second);
2. **single shooting** with Adam, then **L-BFGS** polish: fit the solved trajectory to the data;
3. **symbolic recovery**: regress the network's output along the fitted trajectory on polynomials
   (STLSQ and forward selection), refit each sparse candidate to the data and keep the best by BIC.

This is the recipe behind ``sciml demo ude`` and ``examples/lotka_volterra_ude.py``.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sciml import layers as L
from sciml.data import LV_PARAMS, lotka_volterra, lotka_volterra_rhs
from sciml.demos import _plot
from sciml.discovery import PolynomialLibrary, discover, trajectory_refit
from sciml.losses import collocation, single_shooting, smooth
from sciml.models import UDE
from sciml.train import Phase, fit

A, B, C, D = LV_PARAMS
#: training steps: (collocation, shooting with Adam, L-BFGS)
FULL_STEPS = (1500, 600, 200)
QUICK_STEPS = (200, 40, 10)


def known(t, u, physics):
    """The physics we know: growth of the prey and decay of the predator."""
    return jnp.stack([A * u[..., 0], -D * u[..., 1]], axis=-1)


def run(out: str = "sciml-demo-ude", quick: bool = False, progress: bool = True, seed: int = 2,
        log=print) -> dict:
    """Train the UDE, recover the equations, write ``fit.png``, ``extrapolation.png`` and ``loss.png``
    into ``out``, and return a summary (fit error, noise level, recovered coefficients, figure paths)."""
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
    shot = fit(lambda p: single_shooting(ude, p, ts, ys), warm.params,
               [Phase(optax.adam(3e-3), n_adam, "shooting (Adam)"), Phase(optax.lbfgs(), n_lbfgs, "L-BFGS")],
               progress=progress)
    params = shot.params

    fitted = np.asarray(ude.solve(params, ys[0], (ts[0], ts[-1]), saveat=ts).ys)
    rmse = np.sqrt(np.mean((fitted - ys) ** 2, axis=0))
    log(f"fit RMSE (x, y) = {np.round(rmse, 4)}; noise std = {np.round(data.noise_std, 4)}")

    dense_t = np.linspace(ts[0], ts[-1], 200)
    states = np.asarray(ude.solve(params, ys[0], (ts[0], ts[-1]), saveat=dense_t).ys)
    missing = np.asarray(ude.network(params, states))
    library = PolynomialLibrary(("x", "y"), degree=2)
    refit = trajectory_refit(lambda t, u: known(t, u, None), library, ts, ys)
    found = discover(states, missing, library, refit=refit)
    log("recovered interaction terms (the network's part, refitted to the data):")
    log("  " + str(found.equations).replace("\n", "\n  "))
    coefficients = found.equations.coefficients

    paths = _figures(out, data, ude, params, library, coefficients,
                     {"collocation": warm.losses, "shooting (Adam)": shot.losses[:n_adam],
                      "L-BFGS": shot.losses[n_adam:]})
    elapsed = time.perf_counter() - started
    log(f"figures: {', '.join(paths)}  ({elapsed:.0f} s)")
    return {"rmse": rmse, "noise_std": data.noise_std, "equations": found.equations, "discovery": found,
            "params": params, "figures": paths, "seconds": elapsed}


def _figures(out, data, ude, params, library, coefficients, losses) -> list[str]:
    from sciml._solve import solve

    ts, ys = data.ts, data.ys
    recovered = lambda t, u, coef: known(t, u, None) + library(u) @ coef  # noqa: E731
    fine = np.linspace(0.0, ts[-1], 300)
    fig, ax = _plot.figure()
    model = np.asarray(ude.solve(params, ys[0], (0.0, ts[-1]), saveat=fine).ys)
    for j, name in enumerate(("prey x", "predator y")):
        ax.plot(ts, ys[:, j], "o", ms=4, color=f"C{j}", label=f"data: {name}")
        ax.plot(fine, model[:, j], "-", color=f"C{j}", label=f"UDE fit: {name}")
    ax.set_xlabel("t")
    ax.set_title("UDE fit to noisy data")
    ax.legend()
    paths = [_plot.save(fig, out, "fit.png")]

    long = np.linspace(0.0, 20.0, 800)
    truth = np.asarray(solve(lambda t, u, p: lotka_volterra_rhs(t, u), jnp.asarray(data.clean[0]), (0.0, 20.0),
                             saveat=long, rtol=1e-10, atol=1e-10).ys)
    ude_long = np.asarray(ude.solve(params, ys[0], (0.0, 20.0), saveat=long, throw=False).ys)
    eq_long = np.asarray(solve(recovered, jnp.asarray(ys[0]), (0.0, 20.0), args=jnp.asarray(coefficients),
                               saveat=long, throw=False).ys)
    fig, axes = _plot.figure(ncols=2)
    for j, (ax, name) in enumerate(zip(axes, ("prey x", "predator y"))):
        ax.plot(long, truth[:, j], "k-", lw=2, label="truth")
        ax.plot(long, ude_long[:, j], "--", color="C1", label="UDE (network)")
        ax.plot(long, eq_long[:, j], ":", color="C2", lw=2, label="recovered equations")
        ax.axvspan(0.0, ts[-1], color="0.9", label="training data")
        ax.set_xlabel("t")
        ax.set_title(f"extrapolation to t = 20: {name}")
        ax.legend(fontsize=8)
    paths.append(_plot.save(fig, out, "extrapolation.png"))
    paths.append(_plot.loss_curve(losses, out, title="UDE training loss"))
    return paths
