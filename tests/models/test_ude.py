"""`sciml.UDE`: known physics plus a network as one vector field, differentiable with every adjoint, explicit
and stiff (checked against central finite differences in float64)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sciml
from sciml import adjoints as A
from sciml import layers as L
from sciml import solvers as S


def decay(t, u, p):
    return -p["k"] * u


UDE = sciml.UDE(decay, L.MLP(2, 2, width=4, depth=1), physics={"k": 0.7})


def test_the_vector_field_is_known_plus_network():
    params = UDE.init(jax.random.key(0), jnp.float64)
    u = jnp.asarray([0.3, -1.2])
    np.testing.assert_allclose(UDE(0.0, u, params), -0.7 * u + UDE.network(params, u), rtol=1e-15)
    assert sorted(params) == ["nn", "physics"]

    product = sciml.UDE(decay, L.MLP(2, 2, width=4, depth=1), physics={"k": 0.7}, combine=lambda k, n: k * n)
    np.testing.assert_allclose(product(0.0, u, params), -0.7 * u * product.network(params, u), rtol=1e-15)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_params_solution_and_gradient_keep_the_dtype(dtype):
    params = UDE.init(jax.random.key(0), dtype)
    assert all(leaf.dtype == dtype for leaf in jax.tree_util.tree_leaves(params))

    def loss(p):
        return jnp.sum(UDE.solve(p, jnp.ones(2, dtype), (0.0, 1.0)).ys ** 2)

    value, grads = jax.value_and_grad(loss)(params)
    assert value.dtype == dtype
    assert all(leaf.dtype == dtype for leaf in jax.tree_util.tree_leaves(grads))


def test_the_physics_parameter_alone_is_recovered_by_fit():
    """Data from u' = -0.4 u (network contribution switched off): fitting recovers k = 0.4."""
    frozen = sciml.UDE(decay, L.Dense(2, 2, init_weight="zeros"), physics={"k": 1.0},
                       combine=lambda known, nn: known)
    ts = jnp.linspace(0.0, 2.0, 9)
    data = jnp.exp(-0.4 * ts)[:, None] * jnp.ones(2)
    params = frozen.init(jax.random.key(0), jnp.float64)
    result = sciml.fit(lambda p: sciml.losses.single_shooting(frozen, p, ts, data), params, optax.adam(0.05),
                       steps=300, progress=False)
    np.testing.assert_allclose(result.params["physics"]["k"], 0.4, rtol=1e-5)


# Every adjoint (each takes the UDE's params and closure its own way); the stiff path with Rodas5P.
# The solvers themselves are checked against every adjoint in tests/adjoints.
PAIRS = [(S.Tsit5(), A.Direct()), (S.Tsit5(), A.Backsolve()), (S.Tsit5(), A.Quadrature()),
         (S.Tsit5(), A.Forward()), (S.Rodas5P(), A.Interpolating())]


@pytest.mark.slow
@pytest.mark.parametrize("solver, adjoint", PAIRS, ids=[f"{type(s).__name__}-{type(a).__name__}" for s, a in PAIRS])
def test_gradient_matches_finite_differences(solver, adjoint):
    params = UDE.init(jax.random.key(1), jnp.float64)
    y0 = jnp.asarray([1.0, -0.5])

    def loss(p):
        sol = UDE.solve(p, y0, (0.0, 1.0), saveat=jnp.asarray([0.5, 1.0]), solver=solver, adjoint=adjoint,
                        rtol=1e-10, atol=1e-10)
        return jnp.sum(sol.ys ** 2)

    grads = jax.grad(loss)(params)
    direction = jax.tree_util.tree_map(lambda x: jnp.asarray(np.random.default_rng(0).standard_normal(x.shape)),
                                       params)
    eps = 1e-5
    shifted = [jax.tree_util.tree_map(lambda p, d, s=s: p + s * eps * d, params, direction) for s in (1, -1)]
    fd = (loss(shifted[0]) - loss(shifted[1])) / (2 * eps)
    directional = sum(jnp.sum(g * d) for g, d in zip(jax.tree_util.tree_leaves(grads),
                                                     jax.tree_util.tree_leaves(direction)))
    # the finite difference itself is only good to about tol / eps = 1e-5
    np.testing.assert_allclose(directional, fd, rtol=2e-5)


def test_bad_constructions_are_refused():
    with pytest.raises(TypeError, match="known"):
        sciml.UDE("not callable", L.Dense(2, 2))
    with pytest.raises(TypeError, match="stateless"):
        sciml.UDE(decay, L.BatchNorm(2))
    with pytest.raises(TypeError, match="physics"):
        sciml.UDE(decay, L.Dense(2, 2), physics={"k": "fast"})


def test_solve_and_the_losses_take_a_controller():
    params = UDE.init(jax.random.key(0), jnp.float64)
    ts = jnp.linspace(0.0, 2.0, 5)
    pid = S.PIDController(pcoeff=0.3, icoeff=0.4)
    sol = UDE.solve(params, jnp.ones(2), (0.0, 2.0), saveat=ts, controller=pid)
    direct = sciml.solve(UDE, jnp.ones(2), (0.0, 2.0), args=params, saveat=ts, controller=pid)
    default = UDE.solve(params, jnp.ones(2), (0.0, 2.0), saveat=ts)
    counts = [{name: int(v) for name, v in s.stats.items()} for s in (sol, direct, default)]
    assert counts[0] == counts[1] != counts[2]
    data = jnp.zeros((5, 2)).at[0].set(1.0)
    loss = sciml.losses.single_shooting(UDE, params, ts, data, controller=pid)
    np.testing.assert_allclose(loss, jnp.mean((sol.ys - data) ** 2), rtol=1e-15)
