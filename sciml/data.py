"""Built-in synthetic datasets for the demos, examples and tests.

Each dataset is computed by scipy's DOP853 at ``rtol=atol=1e-12`` (an independent reference, and no
compilation) and returned as numpy arrays, with noise drawn from ``numpy.random.default_rng(seed)``, so the same
seed gives the same numbers on every machine.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["Trajectory", "lotka_volterra", "spiral"]

#: Lotka-Volterra parameters (a, b, c, d) and initial state of the UDE demo (Rackauckas et al. 2020)
LV_PARAMS = (1.3, 0.9, 0.8, 1.8)
LV_U0 = (0.44249296, 4.6280594)
#: the spiral of the neural ODE demo (torchdiffeq / DiffEqFlux): dy/dt = (y ** 3) @ SPIRAL_A
SPIRAL_A = ((-0.1, 2.0), (-2.0, -0.1))


@dataclasses.dataclass(frozen=True)
class Trajectory:
    """A sampled trajectory: ``ys`` (noisy if noise was asked for) at ``ts``, and the exact ``clean``."""

    ts: np.ndarray
    ys: np.ndarray
    clean: np.ndarray
    noise_std: np.ndarray


def lotka_volterra_rhs(t, u, p=LV_PARAMS):
    """``x' = a x - b x y``, ``y' = c x y - d y`` (numpy in, numpy out; JAX in, JAX out)."""
    a, b, c, d = p
    x, y = u[..., 0], u[..., 1]
    return _namespace(u).stack([a * x - b * x * y, c * x * y - d * y], axis=-1)


def lotka_volterra(t_end: float = 3.0, dt: float = 0.1, noise: float = 0.05, seed: int = 2) -> Trajectory:
    """Predator-prey data of the Lotka-Volterra UDE demo.

    ``x' = a x - b x y``, ``y' = c x y - d y`` with ``(a, b, c, d) = (1.3, 0.9, 0.8, 1.8)`` from
    ``u0 = (0.44249296, 4.6280594)``, sampled every ``dt`` on ``[0, t_end]``. The noise is Gaussian with
    standard deviation ``noise`` times the mean of each component over the record (as in the Julia
    SciML tutorial), drawn with ``numpy.random.default_rng(seed)``.

    Example:
        >>> from sciml.data import lotka_volterra
        >>> data = lotka_volterra()
        >>> data.ts.shape, data.ys.shape, data.ys.dtype
        ((31,), (31, 2), dtype('float64'))
    """
    ts = np.round(np.arange(0.0, t_end + dt / 2, dt), 12)
    clean = _reference(lotka_volterra_rhs, LV_U0, ts)
    std = noise * clean.mean(axis=0)
    ys = clean + std * np.random.default_rng(seed).standard_normal(clean.shape)
    return Trajectory(ts=ts, ys=ys, clean=clean, noise_std=std)


def spiral_rhs(t, y, a=SPIRAL_A):
    """``dy/dt = (y ** 3) @ A``, the spiral of the neural ODE demo (numpy or JAX)."""
    return (y ** 3) @ _namespace(y).asarray(a, y.dtype)


def _namespace(array):
    import jax
    import jax.numpy as jnp

    return jnp if isinstance(array, jax.Array) else np


def spiral(n: int = 30, t_end: float = 1.5) -> Trajectory:
    """The spiral ``dy/dt = (y ** 3) @ A`` from ``y0 = (2, 0)``, ``n`` points on ``[0, t_end]`` (no noise).

    Example:
        >>> from sciml.data import spiral
        >>> spiral().ys[0].tolist()
        [2.0, 0.0]
    """
    ts = np.linspace(0.0, t_end, n)
    clean = _reference(spiral_rhs, (2.0, 0.0), ts)
    return Trajectory(ts=ts, ys=clean, clean=clean, noise_std=np.zeros(2))


def _reference(rhs, y0, ts) -> np.ndarray:
    from scipy.integrate import solve_ivp

    sol = solve_ivp(rhs, (float(ts[0]), float(ts[-1])), np.asarray(y0, np.float64),
                    t_eval=ts, method="DOP853", rtol=1e-12, atol=1e-12)
    return sol.y.T
