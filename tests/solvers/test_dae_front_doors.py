"""A mass matrix through every front door of the pipeline: `solve_ensemble`, the losses of
`sciml.losses` (hence `fit` and `UDE`) and `NeuralODE`.

Oracles: the linear DAE of test_dae.py (``u0' = -u0 + u1``, ``0 = u1 + a u0``, exactly
``u0 = u0(0) exp(-(1 + a) t)``, ``u1 = -a u0``), single solves for ensembles, central finite
differences for gradients, and the algebraic equation itself (its residual along the solution).
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sciml
from sciml import layers as L
from sciml import solvers as S
from tests.solvers.test_dae import LIN_M, linear_dae

TS = np.linspace(0.0, 1.0, 6)


def exact(u00, a, ts=TS):
    u0 = u00 * np.exp(-(1.0 + a) * ts)
    return np.stack([u0, -a * u0], axis=-1)


def test_ensemble_with_a_mass_matrix_is_each_trajectorys_solve():
    a = jnp.array([0.5, 2.0, 4.0])
    u0s = jnp.array([[1.0, 0.0], [2.0, 1.0], [0.5, -3.0]])         # inconsistent: each is initialised
    ens = sciml.solve_ensemble(linear_dae, u0s, (0.0, 1.0), args=a, solver=S.Rodas5P(), saveat=TS, rtol=1e-9,
                               atol=1e-12, mass_matrix=LIN_M)
    assert np.all(np.asarray(ens.status) == 0)
    for i in range(3):
        np.testing.assert_allclose(ens.ys[i], exact(float(u0s[i, 0]), float(a[i])), rtol=1e-7, atol=1e-12)
    with pytest.raises(sciml.SolveError, match="not consistent"):
        sciml.solve_ensemble(linear_dae, u0s, (0.0, 1.0), args=a, solver=S.Rodas5P(), saveat=TS,
                             mass_matrix=LIN_M, init="check", throw=True)


def test_the_kernel_refuses_a_mass_matrix_rather_than_solve_another_equation():
    # Rodas5P's kernel takes M (tests/solvers/test_dae_kernel.py); a method without one refuses, naming it
    with pytest.raises(ValueError, match="does not serve this .*Rosenbrock23"):
        sciml.solve_ensemble(linear_dae, jnp.ones((2, 2)), (0.0, 1.0), args=jnp.ones(2), solver=S.Rosenbrock23(),
                             saveat=TS, backend="c", mass_matrix=LIN_M)


@pytest.mark.parametrize("loss_name", ["single_shooting", "multiple_shooting"])
def test_losses_fit_a_dae_parameter_and_differentiate_through_it(loss_name):
    data = jnp.asarray(exact(1.0, 2.0))
    extra = {"group_size": 3} if loss_name == "multiple_shooting" else {}
    loss_fn = getattr(sciml.losses, loss_name)

    def loss(a):
        return loss_fn(linear_dae, a, TS, data, solver=S.Rodas5P(), rtol=1e-10, atol=1e-12, mass_matrix=LIN_M,
                       **extra)

    assert float(loss(jnp.asarray(2.0))) < 1e-16                      # the true rate fits the data
    grad = float(jax.jit(jax.grad(loss))(jnp.asarray(1.5)))
    eps = 1e-5
    fd = float((loss(jnp.asarray(1.5 + eps)) - loss(jnp.asarray(1.5 - eps))) / (2 * eps))
    assert grad < 0                                                    # a larger rate fits better
    np.testing.assert_allclose(grad, fd, rtol=1e-5)


def test_ude_solves_a_dae_and_recovers_a_rate():
    # known: the algebraic equation and the decay; the network learns nothing useful here (zero init),
    # the rate `a` is a physical parameter fitted through the DAE
    def known(t, u, p):
        return jnp.stack([-u[0] + u[1], u[1] + p["a"] * u[0]])

    ude = sciml.UDE(known, L.Dense(2, 2), physics={"a": 1.0},
                    combine=lambda k, n: k + jnp.stack([0.0 * n[0], 0.0 * n[1]]))
    params = ude.init(jax.random.key(0), jnp.float64)
    data = jnp.asarray(exact(1.0, 2.0))
    sol = ude.solve(params, data[0], (0.0, 1.0), saveat=TS, solver=S.Rodas5P(), mass_matrix=LIN_M, rtol=1e-9,
                    atol=1e-12)
    np.testing.assert_allclose(sol.ys, exact(1.0, 1.0), rtol=1e-7, atol=1e-12)
    result = sciml.fit(lambda p: sciml.losses.single_shooting(ude, p, TS, data, solver=S.Rodas5P(),
                                                              mass_matrix=LIN_M, rtol=1e-8, atol=1e-10),
                       params, optimizer=optax.adam(0.1), steps=80)
    assert abs(float(result.params["physics"]["a"]) - 2.0) < 2e-2


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_neural_ode_with_a_mass_matrix_keeps_its_algebraic_equation(dtype, tmp_path):
    node = sciml.NeuralODE(L.Dense(2, 2), (0.0, 1.0), solver=S.Rodas5P(), mass_matrix=LIN_M, saveat=(0.5, 1.0),
                           rtol=1e-6, atol=1e-8)
    params, _ = node.init(jax.random.key(0), dtype)
    ys = node(params, jnp.array([1.0, 0.3], dtype))
    assert ys.dtype == dtype and ys.shape == (2, 2)
    residual = jax.vmap(lambda u: node.model(params["model"], u))(ys)[:, 1]
    assert float(jnp.max(jnp.abs(residual))) < (1e-5 if dtype == jnp.float32 else 1e-12)
    path = os.fspath(tmp_path / "node.safetensors")
    sciml.save(path, params, node)
    _, loaded = sciml.load(path)
    assert loaded.mass_matrix == node.mass_matrix
    with pytest.raises(ValueError, match="jax.vmap"):
        node(params, jnp.ones((3, 2), dtype))
    with pytest.raises(ValueError, match="square"):
        sciml.NeuralODE(L.Dense(2, 2), mass_matrix=np.ones((2, 3)))
