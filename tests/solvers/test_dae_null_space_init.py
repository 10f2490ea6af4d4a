"""Consistent initialisation of ``M y' = f`` for a singular ``M`` not in semi-explicit form: the
algebraic equations are ``N^T f = 0`` over the left null space ``N`` of ``M`` and ``y0`` moves along
its right null space ``V0`` (`sciml.solvers._mass.consistent`).

Oracle: a linear semi-explicit DAE in coordinates ``x = R y``, ``x0' = -x0 + x1``, ``0 = x1 + a x0``,
written as ``M y' = L h(R y)`` with ``M = L diag(1, 0) R`` (``L``, ``R`` integer and invertible, so
``M`` is exact in float32): its exact solution is ``x0(t) = x0(0) exp(-(1 + a) t)``, ``x1 = -a x0``,
and ``x0(0) = (R y0)_0`` is the differential part the initialisation keeps. Two such ``M``: a symmetric
one with no zero row or column, and one with a zero row but no zero column (which `sciml.solve` refused
before the general case). Gradients: central finite differences and the exact derivative.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sciml
from sciml import adjoints as A
from sciml import solvers as S
from sciml.solvers._mass import MassMatrix
from sciml.solvers._status import Status

#: name -> (L, R): M = L diag(1, 0) R
TRANSFORMS = {"symmetric": (np.array([[1.0, 0.0], [-1.0, 1.0]]), np.array([[1.0, -1.0], [0.0, 1.0]])),
              "zero_row": (np.eye(2), np.array([[1.0, 1.0], [0.0, 1.0]]))}
TS = np.array([0.0, 0.5, 1.0])
A_TRUE = 2.0
Y0 = np.array([1.5, 0.5])          # inconsistent for both: x1(0) = 0.5, not -a x0(0)


def mass(name):
    L, R = TRANSFORMS[name]
    return L @ np.diag([1.0, 0.0]) @ R


def field(name):
    L, R = TRANSFORMS[name]

    def f(t, y, a):
        x = jnp.asarray(R, y.dtype) @ y
        return jnp.asarray(L, y.dtype) @ jnp.stack([-x[0] + x[1], x[1] + a * x[0]])
    return f


def exact(name, y0, a, ts):
    """``y(ts)``, ``(len(ts), 2)``: the solution from the consistent state with ``M y0`` kept."""
    _, R = TRANSFORMS[name]
    x0 = (R @ y0)[0] * np.exp(-(1.0 + a) * np.asarray(ts))
    return np.linalg.solve(R, np.stack([x0, -a * x0])).T


@functools.lru_cache(maxsize=None)
def compiled_solve(name, dtype, init="solve"):
    rtol, atol = (1e-10, 1e-12) if dtype == "float64" else (1e-5, 1e-6)
    return jax.jit(lambda y0, a: sciml.solve(
        field(name), y0, (0.0, 1.0), args=a, solver=S.Rodas5P(), saveat=jnp.asarray(TS, dtype), rtol=rtol,
        atol=atol, mass_matrix=mass(name).astype(dtype), init=init, throw=False))


def test_the_transforms_are_not_semi_explicit():
    for name in TRANSFORMS:
        m = MassMatrix(mass(name))
        assert m.singular and m.rank == 1 and not m.semi_explicit
        N, V0 = m.algebraic_equations, m.algebraic_directions
        np.testing.assert_allclose(N.T @ mass(name), 0.0, atol=1e-15)
        np.testing.assert_allclose(mass(name) @ V0, 0.0, atol=1e-15)
    assert MassMatrix(np.diag([1.0, 0.0])).semi_explicit


@pytest.mark.parametrize("name,dtype,tol", [("symmetric", "float64", 1e-9), ("symmetric", "float32", 1e-4),
                                            ("zero_row", "float64", 1e-9)])
def test_init_solve_moves_y0_along_the_null_space_and_matches_the_exact_solution(name, dtype, tol):
    sol = compiled_solve(name, dtype)(jnp.asarray(Y0, dtype), jnp.asarray(A_TRUE, dtype))
    assert int(sol.status) == Status.SUCCESS, sol.message()
    assert sol.ys.dtype == jnp.dtype(dtype)
    assert bool(sol.stats["init_adjusted"])
    assert float(sol.stats["init_residual"]) < 10 * np.finfo(dtype).eps
    # the differential part M y0 is kept, and y0 became the exact consistent state
    np.testing.assert_allclose(mass(name) @ np.asarray(sol.ys[0], np.float64), mass(name) @ Y0, atol=tol)
    np.testing.assert_allclose(sol.ys, exact(name, Y0, A_TRUE, TS), atol=tol)


def test_init_check_refuses_the_inconsistent_y0_with_its_residual():
    # N = (1, 1) / sqrt 2 and N^T f = h1 / sqrt 2 = (x1 + a x0) / sqrt 2 = (0.5 + 2) / sqrt 2
    sol = compiled_solve("symmetric", "float64", "check")(jnp.asarray(Y0), jnp.asarray(A_TRUE))
    assert int(sol.status) == Status.INCONSISTENT_INIT
    np.testing.assert_allclose(float(sol.stats["init_residual"]), 2.5 / np.sqrt(2.0), rtol=1e-14)
    assert f"{2.5 / np.sqrt(2.0):.3g}" in sol.message()
    consistent_y0 = exact("symmetric", Y0, A_TRUE, [0.0])[0]
    assert int(compiled_solve("symmetric", "float64", "check")(jnp.asarray(consistent_y0),
                                                               jnp.asarray(A_TRUE)).status) == Status.SUCCESS


def test_direct_gradient_through_the_initialisation_matches_finite_differences():
    w = np.array([0.3, -0.7])

    def loss(y0, a):
        sol = sciml.solve(field("symmetric"), y0, (0.0, 1.0), args=a, solver=S.Rodas5P(), rtol=1e-10, atol=1e-12,
                          mass_matrix=mass("symmetric"), adjoint=A.Direct())
        return sol.y_final @ jnp.asarray(w)

    value_and_grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))     # one compile serves both

    def value(y0, a):
        return value_and_grad(y0, a)[0]

    y0, a = jnp.asarray(Y0), jnp.asarray(A_TRUE)
    g_y0, g_a = value_and_grad(y0, a)[1]
    eps = 1e-5
    fd_a = (value(y0, a + eps) - value(y0, a - eps)) / (2 * eps)
    fd_y0 = [(value(y0.at[i].add(eps), a) - value(y0.at[i].add(-eps), a)) / (2 * eps) for i in range(2)]
    np.testing.assert_allclose(g_a, fd_a, rtol=1e-6)
    np.testing.assert_allclose(g_y0, fd_y0, rtol=1e-6, atol=1e-9)
    # exact: loss = (y0_0 - y0_1) e^{-(1 + a)} w . R^{-1} (1, -a); moving y0 along V0 = (1, 1) changes nothing
    R_inv_w = np.linalg.solve(TRANSFORMS["symmetric"][1], np.eye(2)).T @ w
    x0 = Y0[0] - Y0[1]
    d_a = x0 * np.exp(-(1 + A_TRUE)) * (-(R_inv_w[0] - A_TRUE * R_inv_w[1]) - R_inv_w[1])
    d_y0 = np.exp(-(1 + A_TRUE)) * (R_inv_w[0] - A_TRUE * R_inv_w[1]) * np.array([1.0, -1.0])
    np.testing.assert_allclose(g_a, d_a, rtol=1e-7)
    np.testing.assert_allclose(g_y0, d_y0, rtol=1e-7)
