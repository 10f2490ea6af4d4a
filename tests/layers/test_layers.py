"""What each layer computes, checked against plain numpy or against its defining property."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sciml import layers as L

KEY = jax.random.key(0)
F64 = jnp.float64


def trees_equal(a, b):
    return jax.tree_util.tree_all(jax.tree_util.tree_map(lambda u, v: bool(jnp.all(u == v)), a, b))


def init64(layer):
    return layer.init(KEY, F64)


# -- Dense, initialisers, MLP, Chain -----------------------------------------------------------------

def test_dense_is_an_affine_map_then_the_activation():
    layer = L.Dense(3, 2, act="tanh")
    params, _ = init64(layer)
    x = np.random.default_rng(0).normal(size=(4, 3))
    np.testing.assert_allclose(layer(params, x), np.tanh(x @ params["weight"] + params["bias"]), rtol=1e-14)
    assert layer(params, x[0]).shape == (2,)   # leading axes are optional batch axes


def test_dense_accepts_any_callable_activation():
    layer = L.Dense(2, 2, act=lambda y: 2 * y, use_bias=False)
    params, _ = init64(layer)
    np.testing.assert_allclose(layer(params, np.ones(2)), 2 * params["weight"].sum(0))


@pytest.mark.parametrize("name", ["glorot_uniform", "glorot_normal", "he_uniform", "he_normal",
                                  "kaiming_normal", "lecun_normal", "orthogonal", "normal", "zeros", "ones"])
def test_initialisers_are_selectable_by_name(name):
    weight = L.Dense(64, 64, init_weight=name).init(KEY, F64)[0]["weight"]
    assert weight.shape == (64, 64) and weight.dtype == F64
    expected_std = {"glorot_uniform": np.sqrt(1 / 64), "glorot_normal": np.sqrt(1 / 64),
                    "he_uniform": np.sqrt(2 / 64), "he_normal": np.sqrt(2 / 64),
                    "kaiming_normal": np.sqrt(2 / 64), "lecun_normal": np.sqrt(1 / 64),
                    "orthogonal": np.sqrt(1 / 64), "normal": 1.0, "zeros": 0.0, "ones": 0.0}[name]
    assert float(jnp.std(weight)) == pytest.approx(expected_std, rel=0.1, abs=1e-12)
    if name == "orthogonal":
        np.testing.assert_allclose(weight.T @ weight, np.eye(64), atol=1e-12)


def test_an_initialiser_may_be_a_callable_and_must_honour_shape_and_dtype():
    constant = lambda key, shape, dtype: jnp.full(shape, 0.5, dtype)
    assert float(L.Dense(2, 3, init_bias=constant).init(KEY)[0]["bias"][0]) == 0.5
    wrong = lambda key, shape, dtype: jnp.zeros(shape, jnp.float16)
    with pytest.raises(ValueError, match="returned shape .* dtype float16; expected .* dtype float32"):
        L.Dense(2, 3, init_weight=wrong).init(KEY)


def test_mlp_is_a_chain_of_depth_plus_one_dense_layers():
    model = L.MLP(2, 3, width=16, depth=3, act="relu", final_act="sigmoid")
    assert isinstance(model, L.Chain) and len(model) == 4
    assert [(d.in_size, d.out_size, d.act) for d in model.layers] == [
        (2, 16, "relu"), (16, 16, "relu"), (16, 16, "relu"), (16, 3, "sigmoid")]
    assert L.MLP(2, 3, 16, 0) == L.Chain(L.Dense(2, 3))


def test_chain_composes_and_wraps_plain_functions():
    model = L.Chain(L.Dense(2, 3), jnp.sin, L.Dense(3, 1))
    params, _ = init64(model)
    x = np.ones((4, 2))
    expected = L.Dense(3, 1)(params["layer_2"], np.sin(L.Dense(2, 3)(params["layer_0"], x)))
    np.testing.assert_allclose(model(params, x), expected, rtol=1e-14)
    assert model[1] == L.WrappedFunction("sin") and params["layer_1"] == {}


def test_named_chain_keys_and_indexing():
    model = L.Chain(encoder=L.Dense(2, 3), decoder=L.Dense(3, 2))
    params, _ = model.init(KEY)
    assert list(params) == ["encoder", "decoder"] and model["decoder"] == L.Dense(3, 2)


# -- Parallel, SkipConnection, Scale, WrappedFunction ------------------------------------------------

def test_parallel_gives_every_branch_the_input_and_combines_the_outputs():
    a, b = L.Dense(2, 3), L.Dense(2, 3, act="tanh")
    x = np.ones((5, 2))
    for connection, combine in [("add", np.add), ("mul", np.multiply),
                                ("concat", lambda u, v: np.concatenate([u, v], -1))]:
        model = L.Parallel(connection, a, b)
        params, _ = init64(model)
        expected = combine(a(params["layer_0"], x), b(params["layer_1"], x))
        np.testing.assert_allclose(model(params, x), expected)


def test_parallel_splits_a_tuple_input_and_returns_a_tuple_without_connection():
    model = L.Parallel(None, L.Dense(2, 3), L.Dense(4, 1))
    params, _ = model.init(KEY)
    y0, y1 = model(params, (jnp.ones(2), jnp.ones(4)))
    assert y0.shape == (3,) and y1.shape == (1,)


def test_skip_connection_adds_the_input():
    inner = L.Dense(3, 3, act="tanh")
    model = L.SkipConnection(inner)
    params, _ = init64(model)
    x = np.arange(3.0)
    np.testing.assert_allclose(model(params, x), inner(params["layer"], x) + x)
    concat = L.SkipConnection(inner, connection="concat")
    assert concat(params, x).shape == (6,)


def test_scale_is_elementwise_over_the_trailing_shape():
    layer = L.Scale((2, 3))
    params = {"weight": jnp.arange(6.0).reshape(2, 3), "bias": jnp.ones((2, 3))}
    x = np.ones((4, 2, 3))
    np.testing.assert_allclose(layer(params, x), x * params["weight"] + 1)


# -- normalisation -----------------------------------------------------------------------------------

def test_layernorm_standardises_each_sample_over_its_feature_axes():
    layer = L.LayerNorm((2, 3), eps=0.0)
    params, _ = init64(layer)
    y = layer(params, np.random.default_rng(1).normal(size=(4, 2, 3)) * 5 + 3)
    np.testing.assert_allclose(y.mean(axis=(1, 2)), 0, atol=1e-14)
    np.testing.assert_allclose(y.var(axis=(1, 2)), 1, rtol=1e-12)


def test_rmsnorm_gives_unit_root_mean_square():
    layer = L.RMSNorm(4, eps=0.0)
    params, _ = init64(layer)
    y = layer(params, np.random.default_rng(2).normal(size=(3, 4)))
    np.testing.assert_allclose(np.sqrt(np.mean(y**2, axis=-1)), 1, rtol=1e-12)


def test_batchnorm_training_uses_batch_statistics_and_moves_the_running_ones():
    layer = L.BatchNorm(2, momentum=0.25)
    params, state = init64(layer)
    x = np.random.default_rng(3).normal(size=(8, 2)) * 3 + 1
    y, state = layer.apply(params, x, state)
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(state["running_mean"], 0.25 * x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(state["running_var"], 0.75 + 0.25 * x.var(0, ddof=1), rtol=1e-12)


def test_batchnorm_test_mode_uses_running_statistics_and_keeps_the_state():
    layer = L.BatchNorm(2)
    params, state = init64(layer)
    state = L.testmode({**state, "running_mean": jnp.array([1.0, 2.0]), "running_var": jnp.array([4.0, 9.0])})
    x = np.array([[3.0, 5.0]])
    y, new_state = layer.apply(params, x, state)
    np.testing.assert_allclose(y, [[2 / np.sqrt(4 + 1e-5), 3 / np.sqrt(9 + 1e-5)]], rtol=1e-12)
    assert trees_equal(new_state, state)


BN_MODEL = L.Chain(L.Dense(2, 2), L.BatchNorm(2), L.Dropout(0.5))
MODE_TRACES = []


@jax.jit
def bn_model_step(params, x, state):
    MODE_TRACES.append(1)
    return BN_MODEL.apply(params, x, state)


def test_the_mode_flag_is_data_one_compiled_function_serves_both_modes():
    params, state = BN_MODEL.init(KEY)
    x = jnp.ones((4, 2))
    MODE_TRACES.clear()
    _, trained = bn_model_step(params, x, state)
    y_test, tested = bn_model_step(params, x, L.testmode(state))
    assert len(MODE_TRACES) == 1
    assert not bool(tested["layer_1"]["training"]) and bool(trained["layer_1"]["training"])
    y_ref, _ = BN_MODEL.apply(params, x, L.testmode(state))   # eager, Python-bool-free too
    np.testing.assert_allclose(y_test, y_ref, rtol=1e-6)


def test_trainmode_and_testmode_set_every_nested_flag():
    _, state = L.Chain(L.SkipConnection(L.Chain(L.BatchNorm(2), L.Dropout(0.1))), L.Dropout(0.2)).init(KEY)
    flags = lambda s: [bool(v) for p, v in jax.tree_util.tree_leaves_with_path(s) if p[-1].key == "training"]
    assert flags(L.testmode(state)) == [False] * 3
    assert flags(L.trainmode(L.testmode(state))) == [True] * 3


# -- Dropout, Embedding --------------------------------------------------------------------------------

def test_dropout_draws_a_new_mask_on_every_call_and_is_reproducible():
    layer = L.Dropout(0.5)
    params, state = layer.init(KEY)
    x = jnp.ones(64)
    y1, state1 = layer.apply(params, x, state)
    y2, _ = layer.apply(params, x, state1)
    assert not jnp.array_equal(y1, y2)
    assert jnp.array_equal(layer.apply(params, x, layer.init(KEY)[1])[0], y1)
    assert set(np.unique(y1).tolist()) == {0.0, 2.0}


def test_dropout_keeps_the_mean_and_is_the_identity_in_test_mode():
    layer = L.Dropout(0.3)
    params, state = layer.init(KEY)
    x = jnp.ones(20_000)
    y, _ = layer.apply(params, x, state)
    assert float(y.mean()) == pytest.approx(1.0, abs=0.03)
    y_test, _ = layer.apply(params, x, L.testmode(state))
    assert jnp.array_equal(y_test, x)


def test_embedding_looks_up_rows_and_refuses_float_indices():
    layer = L.Embedding(5, 3)
    params, _ = layer.init(KEY)
    ids = jnp.array([[0, 4], [2, 2]])
    np.testing.assert_array_equal(layer(params, ids), params["weight"][ids])
    with pytest.raises(TypeError, match="integer indices; got an input of dtype float"):
        layer(params, jnp.array([1.0]))
    assert bool(jnp.all(jnp.isnan(layer(params, jnp.array([7])))))   # out of range: NaN, not a wrong row


# -- MultiHeadAttention --------------------------------------------------------------------------------

def reference_attention(layer, params, x):
    """Per-head attention written out in numpy."""
    dense = lambda p, v: v @ np.asarray(p["weight"]) + np.asarray(p["bias"])
    q, k, v = (dense(params[n], x) for n in ("query", "key", "value"))
    h, d = layer.num_heads, layer.head_size
    outs = []
    for i in range(h):
        qi, ki, vi = (a[..., i * d:(i + 1) * d] for a in (q, k, v))
        scores = qi @ np.swapaxes(ki, -1, -2) / np.sqrt(d)
        if layer.causal:
            scores = np.where(np.tril(np.ones(scores.shape[-2:], bool)), scores, -np.inf)
        w = np.exp(scores - scores.max(-1, keepdims=True))
        outs.append((w / w.sum(-1, keepdims=True)) @ vi)
    return dense(params["out"], np.concatenate(outs, -1))


@pytest.mark.parametrize("causal", [False, True])
def test_attention_matches_a_reference_implementation(causal):
    layer = L.MultiHeadAttention(6, 3, causal=causal)
    params, _ = init64(layer)
    x = np.random.default_rng(4).normal(size=(2, 5, 6))
    np.testing.assert_allclose(layer(params, x), reference_attention(layer, params, x), rtol=1e-12)


def test_causal_attention_does_not_look_ahead():
    layer = L.MultiHeadAttention(4, 2, causal=True)
    params, _ = init64(layer)
    x = np.random.default_rng(5).normal(size=(6, 4))
    changed = x.copy()
    changed[4:] += 1.0
    np.testing.assert_allclose(layer(params, x)[:4], layer(params, changed)[:4], rtol=1e-13)


def test_attention_needs_a_sequence_axis():
    layer = L.MultiHeadAttention(4, 2)
    params, _ = layer.init(KEY)
    with pytest.raises(ValueError, match=r"shape \(\.\.\., seq, dim\); got shape \(4,\).*x\[None\]"):
        layer(params, jnp.ones(4))
