"""Gradients through stiff solves match central finite differences on ROBER (float64).

Loss: a weighted sum of ROBER's state at t = 40, differentiated with respect to the logarithms of the
three rate constants. Oracle: central differences (step 1e-5 in log k) of a Rodas5P solve at
rtol=1e-12. ``adjoint=Direct()`` differentiates the discrete solver: through the Jacobian and the LU
factorisation for Rosenbrock methods, and through the Newton stage solutions by the implicit-function
theorem for Kvaerno5 and RadauIIA5. BDF is a multistep method: ``Forward()`` differentiates through its history,
while ``Direct()`` (which re-runs single steps) refuses it with the alternatives.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sciml
from sciml import adjoints as A
from sciml import solvers as S
from tests.solvers.stiff_problems import PROBLEMS, rober

LOG_K = np.log(PROBLEMS["rober"].args)
FLOOR = PROBLEMS["rober"].floor
WEIGHTS = np.array([1.0, 1e4, 1.0])        # y2 is ~1e-5 of the others


def loss_fn(solver, adjoint, rtol, dtype=jnp.float64):
    def loss(log_k):
        sol = sciml.solve(rober, jnp.array([1.0, 0.0, 0.0], dtype), (0.0, 40.0), args=jnp.exp(log_k), solver=solver,
                          rtol=rtol, atol=jnp.asarray(rtol * FLOOR, dtype), adjoint=adjoint)
        return jnp.sum(jnp.asarray(WEIGHTS, dtype) * sol.y_final)
    return loss


@functools.lru_cache(maxsize=None)
def finite_differences():
    loss = jax.jit(loss_fn(S.Rodas5P(), A.Direct(), 1e-12))
    eps = 1e-5
    return np.array([(loss(LOG_K + eps * e) - loss(LOG_K - eps * e)) / (2 * eps) for e in np.eye(3)])


@pytest.mark.parametrize("solver", [S.Rodas5P(), S.Kvaerno5(), S.RadauIIA5()], ids=repr)
def test_direct_gradient_matches_finite_differences(solver):
    grad = jax.jit(jax.grad(loss_fn(solver, A.Direct(), 1e-8)))(jnp.asarray(LOG_K))
    assert grad.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(grad), finite_differences(), rtol=1e-5)


def test_bdf_gradient_by_forward_sensitivities_matches_finite_differences():
    grad = jax.jit(jax.grad(loss_fn(S.BDF(), A.Forward(), 1e-8)))(jnp.asarray(LOG_K))
    np.testing.assert_allclose(np.asarray(grad), finite_differences(), rtol=1e-5)


def test_direct_refuses_bdf_and_names_what_works():
    with pytest.raises(NotImplementedError, match=r"multistep.*Forward\(\)"):
        jax.grad(loss_fn(S.BDF(), A.Direct(), 1e-6))(jnp.asarray(LOG_K))


def test_float32_gradient_stays_float32():
    grad = jax.jit(jax.grad(loss_fn(S.Rodas5P(), A.Direct(), 1e-4, jnp.float32)))(jnp.asarray(LOG_K, jnp.float32))
    assert grad.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(grad, np.float64), finite_differences(), rtol=2e-2)
