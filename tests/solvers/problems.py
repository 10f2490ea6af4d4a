"""Test problems with exact solutions or tight scipy references, shared by the solver tests.

References come from scipy's DOP853 at rtol=atol=1e-13 (an independent implementation) and are
computed once per session.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
from scipy.integrate import solve_ivp


# -- exact solutions --------------------------------------------------------------------------
def rotation(t, y, eps):
    """y' = (1 + eps t) J y: a rotation with time-dependent speed; exact: (cos phi, sin phi)."""
    return (1.0 + eps * t) * jnp.stack([-y[1], y[0]])


def rotation_exact(t, eps):
    t = np.asarray(t, dtype=np.float64)
    phi = t + eps * t * t / 2
    return np.stack([np.cos(phi), np.sin(phi)], axis=-1)


ROTATION_Y0 = np.array([1.0, 0.0])


def forced_logistic(t, y, args):
    """y' = cos(t) y (1 - y); exact: 1 / (1 + exp(-sin t)) from y0 = 1/2. Nonlinear, non-autonomous."""
    return jnp.cos(t) * y * (1.0 - y)


def forced_logistic_exact(t):
    return np.array([1.0 / (1.0 + np.exp(-np.sin(t)))])


def decay(t, y, k):
    return -k * y


# -- references -------------------------------------------------------------------------------
def lotka_volterra(t, y, p):
    x, z = y[0], y[1]
    return jnp.stack([p[0] * x - p[1] * x * z, p[2] * x * z - p[3] * z])


LV_P = np.array([1.5, 1.0, 3.0, 1.0])
LV_Y0 = np.array([1.0, 1.0])


def lorenz(t, y, p):
    sigma, rho, beta = p[0], p[1], p[2]
    return jnp.stack([sigma * (y[1] - y[0]), y[0] * (rho - y[2]) - y[1], y[0] * y[1] - beta * y[2]])


LORENZ_P = np.array([10.0, 28.0, 8.0 / 3.0])
LORENZ_Y0 = np.array([1.0, 0.0, 0.0])


def two_body(t, y, mu):
    r = y[:2]
    return jnp.concatenate([y[2:], -mu * r / jnp.sum(r ** 2) ** 1.5])


def two_body_y0(eccentricity: float) -> np.ndarray:
    """Periapsis of an orbit with unit semi-major axis and mu = 1 (period 2 pi)."""
    e = eccentricity
    return np.array([1 - e, 0.0, 0.0, np.sqrt((1 + e) / (1 - e))])


def linear(t, y, A):
    return A @ y


def linear_matrix(n: int = 100, seed: int = 0) -> np.ndarray:
    """A stable non-normal matrix with eigenvalues in [-2, -0.1] (non-stiff)."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    lam = -np.linspace(0.1, 2.0, n)
    return (Q * lam) @ Q.T + 0.05 * np.triu(rng.normal(size=(n, n)), 1)


def _np_rhs(f, args):
    return lambda t, y: np.asarray(f(t, jnp.asarray(y), args))


@functools.lru_cache(maxsize=None)
def reference(name: str, t1: float, n_save: int = 11):
    """(ts, ys) of a named problem from scipy DOP853 at rtol=atol=1e-13."""
    f, y0, args = PROBLEMS[name]()
    ts = np.linspace(0.0, t1, n_save)
    return ts, scipy_solution(name, t1, ts, "DOP853", 1e-13)


def scipy_solution(name: str, t1: float, ts, method: str, tol: float) -> np.ndarray:
    """scipy's solution of a named problem at `ts`, shape (len(ts), n)."""
    f, y0, args = PROBLEMS[name]()
    res = solve_ivp(_np_rhs(f, args), (0.0, t1), y0, method=method, rtol=tol, atol=tol, t_eval=ts)
    assert res.success
    return res.y.T


PROBLEMS = {
    "lotka_volterra": lambda: (lotka_volterra, LV_Y0, LV_P),
    "lorenz": lambda: (lorenz, LORENZ_Y0, LORENZ_P),
    "two_body": lambda: (two_body, two_body_y0(0.0), 1.0),
    "two_body_eccentric": lambda: (two_body, two_body_y0(0.6), 1.0),
    "linear100": lambda: (linear, np.ones(100), linear_matrix()),
}
