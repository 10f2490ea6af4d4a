"""Gradients through stiff solves: ROBER (Rodas5P) and Van der Pol with mu = 1000 (Kvaerno5), for the
methods that are stable on stiff problems (Direct, Interpolating, Quadrature, Forward), against
central finite differences of tight solves and against each other.

ROBER's rate constants span nine orders of magnitude, so it is differentiated with respect to their
logarithms (and the initial amount of the first species; perturbing the zero initial y2, y3 would make
them negative, where the system blows up); the loss weights y2 (of size 1e-5) up to the others'.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sciml
from sciml import adjoints as A
from sciml import solvers as S
from tests.adjoints.problems import flat, rel_error
from tests.solvers.stiff_problems import rober, van_der_pol

METHODS = [A.Direct(), A.Interpolating(), A.Quadrature(), A.Forward()]
ROBER_TS = jnp.array([0.4, 4.0, 40.0])
ROBER_W = jnp.array([1.0, 1e4, 1.0])
ROBER_FLOOR = jnp.array([1.0, 1e-6, 1.0])


def rober_loss(theta, tol, adjoint):
    y0 = jnp.stack([theta["y1_0"], jnp.zeros_like(theta["y1_0"]), jnp.zeros_like(theta["y1_0"])])
    sol = sciml.solve(rober, y0, (0.0, 40.0), args=jnp.exp(theta["log_k"]), solver=S.Rodas5P(),
                      saveat=ROBER_TS, rtol=tol, atol=tol * ROBER_FLOOR, adjoint=adjoint)
    return jnp.sum(ROBER_W * sol.ys)


def vdp_loss(theta, tol, adjoint):
    sol = sciml.solve(van_der_pol, theta["y0"], (0.0, 2.0), args=theta["mu"], solver=S.Kvaerno5(),
                      saveat=jnp.array([0.5, 1.0, 2.0]), rtol=tol, atol=tol, adjoint=adjoint)
    return jnp.sum(sol.ys[:, 0]) + 100.0 * jnp.sum(sol.ys[:, 1])


PROBLEMS = {
    "rober": (rober_loss, {"log_k": np.log([0.04, 3e7, 1e4]), "y1_0": np.array(1.0)}),
    "vdp": (vdp_loss, {"mu": np.array(1000.0), "y0": np.array([2.0, -0.66])}),
}
GRAD = {name: jax.jit(jax.grad(loss), static_argnums=2) for name, (loss, _) in PROBLEMS.items()}
LOSS = {name: jax.jit(loss, static_argnums=2) for name, (loss, _) in PROBLEMS.items()}


def _theta(problem):
    return jax.tree_util.tree_map(jnp.asarray, PROBLEMS[problem][1])


@functools.lru_cache(maxsize=None)
def _gradient(problem, method):
    return jax.device_get(GRAD[problem](_theta(problem), jnp.asarray(1e-9), method))


@functools.lru_cache(maxsize=None)
def _finite_differences(problem):
    theta = _theta(problem)
    leaves, treedef = jax.tree_util.tree_flatten(theta)
    rng = np.random.default_rng(0)
    v = [rng.normal(size=np.shape(x)) for x in leaves]
    norm = np.sqrt(sum(np.sum(x * x) for x in v))
    v = jax.tree_util.tree_unflatten(treedef, [x / norm for x in v])
    h, tol = 1e-5, jnp.asarray(1e-11)
    shifted = lambda sign: jax.tree_util.tree_map(lambda x, d: x + sign * h * d, theta, v)  # noqa: E731
    fd = (float(LOSS[problem](shifted(1), tol, A.Direct())) - float(LOSS[problem](shifted(-1), tol, A.Direct())))
    return v, fd / (2 * h)


@pytest.mark.slow
@pytest.mark.parametrize("problem", list(PROBLEMS))
@pytest.mark.parametrize("method", METHODS, ids=repr)
def test_stiff_gradient_matches_finite_differences_and_direct(method, problem):
    g = _gradient(problem, method)
    v, fd = _finite_differences(problem)
    directional = float(np.dot(flat(g), flat(v)))
    assert abs(directional - fd) <= 1e-5 * abs(fd), (directional, fd)
    assert rel_error(g, _gradient(problem, A.Direct())) <= 1e-5


def _stiff_linear(t, y, k):
    return jnp.stack([-k[0] * y[0] + k[1] * y[1], k[0] * y[0] - k[1] * y[1] - 50.0 * y[1]])


@pytest.mark.slow
def test_backsolve_is_unstable_on_stiff_problems_where_interpolating_is_not():
    """What the docs warn of: re-solving a stiff state backward amplifies its fast decaying mode."""
    def loss(k, method):
        sol = sciml.solve(_stiff_linear, jnp.array([1.0, 0.0]), (0.0, 2.0), args=k, solver=S.Rodas5P(),
                          saveat=jnp.array([0.5, 1.0, 2.0]), rtol=1e-8, atol=1e-8, adjoint=method)
        return jnp.sum(sol.ys)

    k = jnp.array([1.0, 2.0])
    grad = jax.jit(jax.grad(loss), static_argnums=1)
    exact = grad(k, A.Forward())
    assert rel_error(grad(k, A.Interpolating()), exact) <= 1e-4
    assert rel_error(grad(k, A.Backsolve()), exact) > 1e3
