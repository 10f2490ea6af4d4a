"""DESIGN.md principle 2: a layer behaves like an ordinary function about dtypes.

For every layer the output dtype is `jnp.result_type(x, *param leaves)`: float32 with float32 gives
float32, float64 with float64 gives float64, float64 input on float32 parameters gives float64 (never
lowered), complex input gives complex. Gradients with respect to the parameters keep the
parameters' dtypes.

Dtypes are fixed when JAX traces a function, so the exhaustive matrices use `jax.eval_shape` (a trace,
no compilation); a few executed runs tie that to what comes out, and the precision tests check values.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sciml import layers as L

from .layer_cases import CASE_IDS, CASES, real_loss, run

F32, F64, C64, C128 = jnp.float32, jnp.float64, jnp.complex64, jnp.complex128

# (input dtype, parameter dtype)
REAL_COMBOS = [(F32, F32), (F64, F64), (F64, F32), (F32, F64)]
COMPLEX_COMBOS = [(C64, F32), (C128, F64), (C128, F32)]
COMPLEX_CASES = [case for case in CASES if case.complex_ok]
KEY = jax.random.key(0)


def dtype_name(dtype):
    return jnp.dtype(dtype).name


def traced(case, x_dtype, p_dtype, batch=(2,)):
    """Abstract params, input, output and parameter gradients of ``case`` (traced, not run)."""
    params, state = jax.eval_shape(functools.partial(case.layer.init, dtype=p_dtype), KEY)
    x = jax.eval_shape(functools.partial(case.input, dtype=x_dtype, batch=batch), KEY)
    y = jax.eval_shape(functools.partial(run, case.layer), params, x, state)
    grads = jax.eval_shape(lambda p, x, s: jax.grad(real_loss(case.layer, s, x))(p), params, x, state)
    return params, x, y, grads


def promoted(x, params):
    return jnp.result_type(x.dtype, *(leaf.dtype for leaf in jax.tree_util.tree_leaves(params)))


def assert_grads_keep_params_dtype(grads, params):
    assert jax.tree_util.tree_structure(grads) == jax.tree_util.tree_structure(params)
    for g, p in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(params)):
        assert (g.dtype, g.shape) == (p.dtype, p.shape)


@pytest.mark.parametrize("x_dtype,p_dtype", REAL_COMBOS, ids=dtype_name)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_output_dtype_is_the_promotion_of_input_and_params(case, x_dtype, p_dtype):
    params, x, y, grads = traced(case, x_dtype, p_dtype)
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(params)} <= {jnp.dtype(p_dtype)}
    assert y.dtype == promoted(x, params)
    assert_grads_keep_params_dtype(grads, params)


@pytest.mark.parametrize("x_dtype,p_dtype", COMPLEX_COMBOS, ids=dtype_name)
@pytest.mark.parametrize("case", COMPLEX_CASES, ids=[case.name for case in COMPLEX_CASES])
def test_complex_input_gives_complex_output(case, x_dtype, p_dtype):
    params, x, y, grads = traced(case, x_dtype, p_dtype)
    assert y.dtype == promoted(x, params)
    assert jnp.issubdtype(y.dtype, jnp.complexfloating)
    assert_grads_keep_params_dtype(grads, params)


@settings(max_examples=40, deadline=None)
@given(case=st.sampled_from(CASES),
       dtypes=st.sampled_from(REAL_COMBOS + COMPLEX_COMBOS),
       batch=st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple))
def test_dtype_rule_holds_for_any_batch_shape(case, dtypes, batch):
    x_dtype, p_dtype = dtypes
    if jnp.issubdtype(x_dtype, jnp.complexfloating) and not case.complex_ok:
        x_dtype = jnp.finfo(x_dtype).dtype
    params, x, y, grads = traced(case, x_dtype, p_dtype, batch)
    assert y.dtype == promoted(x, params)
    assert y.shape[:len(batch)] == batch
    assert_grads_keep_params_dtype(grads, params)


EXECUTED_MODEL = L.Chain(L.Dense(3, 4, act="tanh"), L.LayerNorm(4), L.Dense(4, 2))


@jax.jit
def executed_output_and_grads(params, x):
    loss = lambda p: jnp.sum(EXECUTED_MODEL(p, x) ** 2)
    return EXECUTED_MODEL(params, x), jax.grad(loss)(params)


@pytest.mark.parametrize("x_dtype,p_dtype", REAL_COMBOS, ids=dtype_name)
def test_executed_model_agrees_with_the_traced_dtypes(x_dtype, p_dtype):
    params, _ = EXECUTED_MODEL.init(KEY, p_dtype)
    y, grads = executed_output_and_grads(params, jax.random.normal(KEY, (2, 3), x_dtype))
    assert y.dtype == jnp.result_type(x_dtype, p_dtype) and np.all(np.isfinite(y))
    assert_grads_keep_params_dtype(grads, params)


def test_complex_input_through_dense_keeps_the_imaginary_part():
    layer = L.Dense(2, 2, use_bias=False)
    params = {"weight": jnp.eye(2, dtype=F32)}
    x = jnp.array([1 + 2j, 3 - 4j], C128)
    y = layer(params, x)
    assert y.dtype == C128
    np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("name", ["tanh", "gelu", "softplus", "sigmoid", "swish", "elu", "selu",
                                  "mish", "log_sigmoid", "softsign"])
def test_named_activations_compute_in_float64(name):
    """No float32 constant inside an activation: float64 input matches a float64 reference."""
    x = np.linspace(-3, 3, 13)
    reference = {
        "tanh": np.tanh(x),
        "gelu": 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3))),
        "softplus": np.log1p(np.exp(x)),
        "sigmoid": 1 / (1 + np.exp(-x)),
        "swish": x / (1 + np.exp(-x)),
        "elu": np.where(x > 0, x, np.expm1(x)),
        "selu": 1.0507009873554804934193349852946 * np.where(
            x > 0, x, 1.6732632423543772848170429916717 * np.expm1(x)),
        "mish": x * np.tanh(np.log1p(np.exp(x))),
        "log_sigmoid": -np.log1p(np.exp(-x)),
        "softsign": x / (1 + np.abs(x)),
    }[name]
    y = L.WrappedFunction(name)({}, jnp.asarray(x))
    assert y.dtype == F64
    np.testing.assert_allclose(y, reference, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("layer", [L.LayerNorm(5), L.RMSNorm(5), L.BatchNorm(5)],
                         ids=lambda layer: type(layer).__name__)
def test_normalisation_computes_in_float64(layer):
    """Statistics of float64 input are float64: the result matches numpy far below float32 eps."""
    x = np.random.default_rng(0).normal(size=(4, 5)) * 1e3 + 1e4
    params, state = layer.init(KEY, F64)
    y, _ = layer.apply(params, jnp.asarray(x), state)
    axis = 0 if isinstance(layer, L.BatchNorm) else -1
    if isinstance(layer, L.RMSNorm):
        reference = x / np.sqrt(np.mean(x**2, axis=axis, keepdims=True) + layer.eps)
    else:
        centred = x - x.mean(axis=axis, keepdims=True)
        reference = centred / np.sqrt(np.mean(centred**2, axis=axis, keepdims=True) + layer.eps)
    np.testing.assert_allclose(y, reference, rtol=1e-12, atol=1e-12)


def test_batchnorm_running_statistics_keep_their_dtype():
    """A state never changes dtype between calls (it can be a `lax.scan` carry)."""
    layer = L.BatchNorm(3)
    params, state = layer.init(KEY, F32)
    y, new_state = layer.apply(params, jnp.ones((4, 3), F64), state)
    assert y.dtype == F64
    assert [leaf.dtype for leaf in jax.tree_util.tree_leaves(new_state)] == \
        [leaf.dtype for leaf in jax.tree_util.tree_leaves(state)]


def test_batchnorm_refuses_to_drop_the_imaginary_part_of_its_statistics():
    layer = L.BatchNorm(3)
    params, state = layer.init(KEY, F32)
    with pytest.raises(TypeError, match="imaginary part.*complex dtype"):
        layer.apply(params, jnp.ones((4, 3), C64), state)
    params, state = layer.init(KEY, C64)
    y, new_state = layer.apply(params, jnp.ones((4, 3), C64) * (1 + 1j), state)
    assert y.dtype == C64 and new_state["running_mean"].dtype == C64
    assert new_state["running_var"].dtype == F32
