"""The gradient oracle problems, shared by the adjoint tests.

Each problem is a loss of a pytree ``theta`` of everything it differentiates (parameters, initial
state, and for Lotka-Volterra the end time, which also moves the save times), with the tolerance a
traced argument and the adjoint a static one, so a compiled gradient serves every tolerance.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

import sciml
from sciml import layers as L


def cast(tree, dtype):
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype), tree)


# -- Lotka-Volterra with parameters; also the end time (and the save times with it) -------------------
def lotka_volterra(t, y, p):
    x, z = y[0], y[1]
    return jnp.stack([p[0] * x - p[1] * x * z, p[2] * x * z - p[3] * z])


LV_THETA = {"p": np.array([1.5, 1.0, 3.0, 1.0]), "y0": np.array([1.0, 1.0]), "t1": np.array(4.0)}
LV_WEIGHTS = np.random.default_rng(0).normal(size=(25, 2))


def lv_loss(theta, tol, adjoint):
    ts = theta["t1"] * jnp.linspace(0.0, 1.0, 25, dtype=theta["t1"].dtype)
    sol = sciml.solve(lotka_volterra, theta["y0"], (jnp.zeros_like(theta["t1"]), theta["t1"]), args=theta["p"],
                      saveat=ts, rtol=tol, atol=tol, adjoint=adjoint)
    return jnp.sum(LV_WEIGHTS.astype(sol.ys.dtype) * sol.ys) + 0.5 * jnp.sum(sol.ys ** 2) / 25


# -- a neural ODE: an MLP from sciml.layers as the vector field ------------------------------------
MLP = L.MLP(2, 2, width=16, depth=2, act="tanh")


def node_theta():
    params, _ = MLP.init(jax.random.PRNGKey(0), dtype=jnp.float64)
    return {"params": jax.tree_util.tree_map(np.asarray, params), "y0": np.array([1.0, -0.5])}


def _node_field(t, y, params):
    return MLP(params, y)


def node_loss(theta, tol, adjoint):
    dtype = theta["y0"].dtype
    ts = jnp.linspace(0.0, 1.0, 20, dtype=dtype)
    sol = sciml.solve(_node_field, theta["y0"], (0.0, 1.0), args=theta["params"], saveat=ts, rtol=tol, atol=tol,
                      adjoint=adjoint)
    target = jnp.stack([jnp.cos(3 * ts), jnp.sin(3 * ts)], axis=1)
    return jnp.mean((sol.ys - target) ** 2)


# -- a 20-dimensional linear system: the gradient is known in closed form --------------------------
LIN_N = 20
_rng = np.random.default_rng(1)
LIN_THETA = {"A": _rng.normal(size=(LIN_N, LIN_N)) / np.sqrt(LIN_N) - 1.5 * np.eye(LIN_N),
             "y0": _rng.normal(size=LIN_N)}
LIN_TS = np.array([0.25, 0.5, 1.0, 1.5, 2.0])
LIN_C = _rng.normal(size=(len(LIN_TS), LIN_N))


def _linear_field(t, y, A):
    return A @ y


def linear_loss(theta, tol, adjoint):
    dtype = theta["y0"].dtype
    sol = sciml.solve(_linear_field, theta["y0"], (0.0, 2.0), args=theta["A"], saveat=jnp.asarray(LIN_TS, dtype),
                      rtol=tol, atol=tol, adjoint=adjoint)
    return jnp.sum(jnp.asarray(LIN_C, dtype) * sol.ys)


def linear_exact_gradient():
    """``L = sum_j c_j . expm(A t_j) y0``: ``dL/dy0 = sum_j expm(A t_j)^T c_j`` and
    ``dL/dA = sum_j t_j L_exp(A^T t_j, c_j y0^T)`` (the Frechet derivative of expm is its own adjoint
    under transposition)."""
    A, y0 = LIN_THETA["A"], LIN_THETA["y0"]
    g_y0 = sum(scipy.linalg.expm(A * t).T @ c for t, c in zip(LIN_TS, LIN_C))
    g_A = sum(t * scipy.linalg.expm_frechet(A.T * t, np.outer(c, y0), compute_expm=False)
              for t, c in zip(LIN_TS, LIN_C))
    return {"A": g_A, "y0": g_y0}


PROBLEMS = {
    "lotka_volterra": (lv_loss, lambda: LV_THETA),
    "neural_ode": (node_loss, node_theta),
    "linear20": (linear_loss, lambda: LIN_THETA),
}

#: one compiled gradient and one compiled loss per problem, shared by every test (tolerance traced)
GRAD = {name: jax.jit(jax.grad(loss), static_argnums=2) for name, (loss, _) in PROBLEMS.items()}
LOSS = {name: jax.jit(loss, static_argnums=2) for name, (loss, _) in PROBLEMS.items()}
#: the Lotka-Volterra gradient of a batch of problems, as `vmap(grad(...))`
VGRAD_LV = jax.jit(lambda th, tol, adjoint: jax.vmap(lambda t: jax.grad(lv_loss)(t, tol, adjoint))(th),
                   static_argnums=2)


def lv_batch(dtype):
    """Two Lotka-Volterra problems: the nominal one and one with other parameters and end time."""
    base = cast(LV_THETA, dtype)
    other = {"p": base["p"] * jnp.asarray([0.9, 1.1, 1.0, 0.95], dtype), "y0": base["y0"] * 1.2,
             "t1": base["t1"] * 0.8}
    return jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), base, other)


@functools.lru_cache(maxsize=None)
def gradients(problem: str, adjoint, dtype_name: str):
    """``[(theta, gradient), ...]`` of ``problem`` with ``adjoint``: float64 at rtol=atol=1e-10, float32
    at 1e-5 (cached: the Direct reference and the finite-difference check share them). Float64
    Lotka-Volterra is computed for a batch of two problems under ``vmap(grad(...))``."""
    dtype = jnp.dtype(dtype_name)
    tol = jnp.asarray(1e-10 if dtype == jnp.float64 else 1e-5, dtype)
    if problem == "lotka_volterra" and dtype == jnp.float64:
        batch = lv_batch(dtype)
        g = jax.device_get(VGRAD_LV(batch, tol, adjoint))
        row = lambda tree, i: jax.tree_util.tree_map(lambda x: x[i], tree)  # noqa: E731
        return [(row(batch, i), row(g, i)) for i in range(2)]
    theta = cast(PROBLEMS[problem][1](), dtype)
    return [(theta, jax.device_get(GRAD[problem](theta, tol, adjoint)))]


def gradient(problem: str, adjoint, dtype_name: str):
    """The gradient at the problem's nominal ``theta``."""
    return gradients(problem, adjoint, dtype_name)[0][1]


def flat(tree):
    return np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree_util.tree_leaves(tree)])


def rel_error(a, b):
    a, b = flat(a), flat(b)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))
