"""`sciml.NeuralODE`: a layer whose output is the ODE solution, checked against the matrix exponential.

With a linear vector field ``dy/dt = y @ W`` (a bias-free Dense layer) the solution is
``y(t) = y0 @ expm(W t)``: the oracle for values, batches, save times, augmentation and gradients.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg

import sciml
from sciml import adjoints as A
from sciml import layers as L
from sciml import solvers as S

W = np.array([[-0.3, 1.1], [-0.9, -0.2]])
SAVE = (0.25, 0.5, 1.0)


def linear_node(dtype, **kw):
    node = sciml.NeuralODE(L.Dense(2, 2, use_bias=False), t_span=(0.0, 1.0), rtol=1e-10, atol=1e-10, **kw)
    return node, {"model": {"weight": jnp.asarray(W, dtype)}}


def exact(y0, t):
    return np.asarray(y0) @ scipy.linalg.expm(W * t)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_output_is_the_solution_at_t1_and_at_saveat(dtype):
    node, params = linear_node(dtype)
    y0 = jnp.asarray([[1.0, 0.5], [-0.5, 2.0]], dtype)       # a batch of two initial states
    y1 = node(params, y0)
    assert y1.shape == (2, 2) and y1.dtype == dtype
    tol = 1e-5 if dtype == jnp.float32 else 1e-8
    np.testing.assert_allclose(y1, exact(y0, 1.0), rtol=tol, atol=tol)

    saving, _ = linear_node(dtype, saveat=SAVE)
    ys = saving(params, y0)
    assert ys.shape == (3, 2, 2) and ys.dtype == dtype
    for k, t in enumerate(SAVE):
        np.testing.assert_allclose(ys[k], exact(y0, t), rtol=tol, atol=tol)


def test_augmented_dimensions_start_at_zero():
    node = sciml.NeuralODE(L.Dense(3, 3, use_bias=False), (0.0, 1.0), saveat=(0.0, 1.0), augment=1,
                           rtol=1e-10, atol=1e-10)
    w3 = np.array([[-0.3, 1.1, 0.2], [-0.9, -0.2, 0.0], [0.4, 0.1, -0.5]])
    params = {"model": {"weight": jnp.asarray(w3)}}
    ys = node(params, jnp.asarray([1.0, 0.5]))
    assert ys.shape == (2, 3)
    np.testing.assert_array_equal(ys[0], [1.0, 0.5, 0.0])
    np.testing.assert_allclose(ys[1], np.array([1.0, 0.5, 0.0]) @ scipy.linalg.expm(w3), rtol=1e-8)


@pytest.mark.parametrize("adjoint", [A.Direct(), A.Auto()], ids=["Direct", "Auto"])
def test_gradient_matches_the_exact_derivative(adjoint):
    node, params = linear_node(jnp.float64, adjoint=adjoint)
    y0 = jnp.asarray([1.0, 0.5])

    def loss(p):
        return jnp.sum(node(p, y0) ** 2)

    def exact_loss(w):
        return np.sum((np.asarray(y0) @ scipy.linalg.expm(w)) ** 2)

    grad = jax.grad(loss)(params)["model"]["weight"]
    eps = 1e-6
    fd = np.zeros((2, 2))
    for i in range(2):
        for j in range(2):
            e = np.zeros((2, 2))
            e[i, j] = eps
            fd[i, j] = (exact_loss(W + e) - exact_loss(W - e)) / (2 * eps)
    np.testing.assert_allclose(grad, fd, rtol=1e-6)


def test_save_and_load_rebuild_the_layer_with_its_solver_and_adjoint(tmp_path):
    node = sciml.NeuralODE(L.MLP(2, 2, width=4, depth=1), t_span=(0.0, 2.0), solver=S.Dopri5(),
                           adjoint=A.Direct(checkpoints=4), saveat=(1.0, 2.0), augment=0, rtol=1e-7)
    params, _ = node.init(jax.random.key(0))
    path = tmp_path / "node.safetensors"
    sciml.save(path, params, model=node)
    loaded_params, loaded = sciml.load(path)
    assert loaded == node and loaded.solver == S.Dopri5() and loaded.adjoint == A.Direct(checkpoints=4)
    x = jnp.ones(2, jnp.float32)
    np.testing.assert_array_equal(loaded(loaded_params, x), node(params, x))


def test_the_default_solver_and_adjoint_are_stored_as_defaults():
    node = sciml.NeuralODE(L.Dense(2, 2), (0.0, 1.0))
    config = node.to_config()
    assert config["fields"]["solver"] is None and config["fields"]["adjoint"] is None
    assert L.from_config(config) == node


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(model=L.BatchNorm(2), t_span=(0, 1)), TypeError, "stateless"),
    (dict(model=jnp.tanh, t_span=(0, 1)), TypeError, "sciml.layers.Layer"),
    (dict(model=L.Dense(2, 2), t_span=(1.0, 1.0)), ValueError, "t0 != t1"),
    (dict(model=L.Dense(2, 2), t_span=(0.0,)), ValueError, "pair"),
    (dict(model=L.Dense(2, 2), t_span=(0, 1), saveat=(0.5, 2.0)), ValueError, "inside"),
    (dict(model=L.Dense(2, 2), t_span=(0, 1), saveat=(0.7, 0.5)), ValueError, "sorted"),
    (dict(model=L.Dense(2, 2), t_span=(0, 1), augment=-1), ValueError, "augment"),
    (dict(model=L.Dense(2, 2), t_span=(0, 1), max_steps=0), ValueError, "max_steps"),
])
def test_bad_configurations_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        sciml.NeuralODE(**kwargs)


def test_an_unknown_solver_in_a_description_is_refused():
    config = sciml.NeuralODE(L.Dense(2, 2), (0.0, 1.0), solver=S.Tsit5()).to_config()
    config["fields"]["solver"] = {"__tuple__": ["os.system", {"__tuple__": []}]}
    with pytest.raises(ValueError, match="cannot rebuild the solver"):
        L.from_config(config)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_training_keeps_the_dtype_end_to_end(dtype):
    """fit a NeuralODE to its own linear target: loss, params, gradients and optimizer state stay `dtype`."""
    node = sciml.NeuralODE(L.Dense(2, 2, use_bias=False), t_span=(0.0, 1.0), saveat=SAVE)
    params = {"model": {"weight": jnp.zeros((2, 2), dtype)}}
    y0 = jnp.asarray([1.0, 0.5], dtype)
    target = jnp.asarray(np.stack([exact(np.asarray([1.0, 0.5]), t) for t in SAVE]), dtype)

    def loss(p):
        return jnp.mean((node(p, y0) - target) ** 2)

    assert loss(params).dtype == dtype
    assert jax.grad(loss)(params)["model"]["weight"].dtype == dtype
    result = sciml.fit(loss, params, optax.adam(0.05), steps=60, progress=False)
    assert result.params["model"]["weight"].dtype == dtype
    assert all(leaf.dtype == dtype for leaf in jax.tree_util.tree_leaves(result.opt_state)
               if jnp.issubdtype(leaf.dtype, jnp.floating))
    assert result.losses[-1] < 0.1 * result.losses[0]


def _counts(sol):
    return {name: int(v) for name, v in sol.stats.items()}


def test_a_controller_is_used_and_saved_with_the_layer(tmp_path):
    pid = S.PIDController(pcoeff=0.3, icoeff=0.4)
    node, params = linear_node(jnp.float64, controller=pid)
    x = jnp.array([1.0, -0.5])
    sol = node.solve(params, x)
    direct = sciml.solve(node.vector_field, x, node.t_span, args=params, rtol=1e-10, atol=1e-10, controller=pid)
    assert _counts(sol) == _counts(direct) != _counts(linear_node(jnp.float64)[0].solve(params, x))
    np.testing.assert_allclose(sol.ys[-1], exact(x, 1.0), rtol=1e-8)

    path = tmp_path / "node.safetensors"
    sciml.save(path, params, model=node)
    _, loaded = sciml.load(path)
    assert loaded == node and loaded.controller == pid

    class Mine(S.PIController):
        pass

    with pytest.raises(ValueError, match=r"the controller .*Mine\(.*\) is not one of `sciml.solvers`.*built-in"):
        sciml.save(tmp_path / "mine.safetensors", params, model=sciml.NeuralODE(node.model, controller=Mine()))
