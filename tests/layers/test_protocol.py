"""The layer protocol (DESIGN.md principle 1): immutable hyper-parameters, explicit params and state,
`init`/`apply`/shorthand, hashable for `jax.jit`, readable printing, and the float64 guard."""

import dataclasses
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sciml import layers as L

KEY = jax.random.key(0)
TRACES = []


def forward(model, params, x):
    TRACES.append(model)
    return model(params, x)


forward_jit = jax.jit(forward, static_argnums=0)


def test_init_gives_plain_nested_dicts_and_apply_returns_output_and_state():
    model = L.Chain(L.Dense(2, 4, act="tanh"), L.Dense(4, 1))
    params, state = model.init(KEY)
    assert params.keys() == {"layer_0", "layer_1"} and params["layer_0"].keys() == {"weight", "bias"}
    assert state == {"layer_0": {}, "layer_1": {}}
    y, new_state = model.apply(params, jnp.ones((3, 2)), state)
    assert y.shape == (3, 1) and new_state == state
    np.testing.assert_array_equal(model(params, jnp.ones((3, 2))), y)


def test_init_dtype_chooses_the_parameter_dtype_and_defaults_to_float32():
    model = L.MLP(2, 1, 4, 1)
    dtypes = lambda params: {p.dtype for p in jax.tree_util.tree_leaves(params)}
    assert dtypes(model.init(KEY)[0]) == {jnp.dtype(jnp.float32)}
    assert dtypes(model.init(KEY, jnp.float64)[0]) == {jnp.dtype(jnp.float64)}


def test_the_shorthand_refuses_stateful_layers_and_says_what_to_do():
    model = L.Chain(L.Dense(2, 2), L.BatchNorm(2))
    params, state = model.init(KEY)
    assert model.has_state() and not L.Dense(2, 2).has_state()
    with pytest.raises(TypeError, match=r"`Chain` carries state.*model\.apply\(params, x, state\)"):
        model(params, jnp.ones((3, 2)))
    y, _ = model.apply(params, jnp.ones((3, 2)), state)
    assert y.shape == (3, 2)


def test_layers_are_immutable():
    layer = L.Dense(2, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        layer.out_size = 4


def test_equal_layers_are_one_static_argument_to_jit_and_do_not_retrace():
    make = lambda: L.Chain(L.Dense(2, 8, act="tanh"), L.Dense(8, 1))
    params, _ = make().init(KEY)
    TRACES.clear()
    forward_jit(make(), params, jnp.ones((5, 2)))
    forward_jit(make(), params, jnp.ones((5, 2)) * 2)   # an equal, separately built model
    assert make() == make() and hash(make()) == hash(make())
    assert len(TRACES) == 1
    forward_jit(L.Chain(L.Dense(2, 8, act="relu"), L.Dense(8, 1)), params, jnp.ones((5, 2)))
    assert len(TRACES) == 2   # different hyper-parameters: a different function


def test_printing_shows_the_tree_with_shapes_and_counts():
    text = str(L.Chain(L.Dense(2, 64, act="tanh"), L.Dense(64, 64, act="tanh"), L.Dense(64, 2)))
    assert text.splitlines() == [
        "Chain                               # 4,482 params",
        "├── layer_0: Dense(2 => 64, tanh)   # 192 params: bias (64,), weight (2, 64)",
        "├── layer_1: Dense(64 => 64, tanh)  # 4,160 params: bias (64,), weight (64, 64)",
        "└── layer_2: Dense(64 => 2)         # 130 params: bias (2,), weight (64, 2)",
        "Total: 4,482 parameters.",
    ]


def test_printing_shows_nested_layers_and_state():
    text = str(L.Chain(L.SkipConnection(L.Chain(L.Dense(3, 3), L.Dropout(0.1))), L.BatchNorm(3)))
    assert "│   └── layer: Chain" in text
    assert "Dropout(rate=0.1)" in text and "state: key (), training ()" in text
    assert "state: running_mean (3,), running_var (3,), training ()" in text
    assert text.endswith("Total: 18 parameters, plus 9 state entries.")


def test_printing_allocates_no_parameters():
    huge = L.Dense(200_000, 200_000)   # 160 GB of float32: only its shapes are ever computed
    assert "40,000,200,000 params" in str(huge)


def test_repr_is_the_constructor_call():
    assert repr(L.Dense(2, 3, act="relu")) == (
        "Dense(in_size=2, out_size=3, act='relu', use_bias=True, init_weight='glorot_uniform', "
        "init_bias='zeros')")


@pytest.mark.parametrize("make,message", [
    (lambda: L.Dense(0, 3), r"`Dense\(in_size=...\)` must be an integer >= 1; got 0"),
    (lambda: L.Dense(2.5, 3), r"`Dense\(in_size=...\)` must be an integer >= 1; got 2.5"),
    (lambda: L.Chain(), r"`Chain\(\)` needs at least one layer"),
    (lambda: L.Chain(L.Dense(2, 2), b=L.Dense(2, 2)), "either all positionally.*or all by name"),
    (lambda: L.Chain(L.Dense(2, 2), 3), "expected a layer or a function"),
    (lambda: L.LayerNorm((2, -1)), "positive int or a tuple of positive ints"),
    (lambda: L.Dropout(1.0), r"\[0, 1\)"),
    (lambda: L.MultiHeadAttention(6, 4), "not a multiple of num_heads.*head_dim="),
    (lambda: L.MLP(2, 1, 8, -1), "counts hidden layers"),
], ids=["in_size=0", "in_size=2.5", "empty-chain", "mixed-chain", "not-a-layer", "bad-shape",
        "dropout-rate", "heads", "depth"])
def test_bad_hyper_parameters_fail_when_the_layer_is_built(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_a_shape_mismatch_names_the_layer_and_the_sizes():
    model = L.Chain(L.Dense(2, 4), L.Dense(3, 1))
    params, _ = model.init(KEY)
    with pytest.raises(ValueError, match=r"Dense\(3 => 1\) expects input whose last axis has in_size=3 "
                                         r"entries; got an input of shape \(5, 4\)"):
        model(params, jnp.ones((5, 2)))


def test_with_x64_off_float64_is_refused_instead_of_truncated():
    code = textwrap.dedent("""
        import numpy as np, jax
        import sciml
        from sciml import layers as L
        layer = L.Dense(2, 2)
        params, _ = layer.init(jax.random.key(0))
        print(layer(params, np.ones(2, np.float32)).dtype)
        for call in (lambda: layer(params, np.ones(2)), lambda: layer.init(jax.random.key(0), np.float64)):
            try:
                call()
            except sciml.PrecisionError as err:
                print("RAISED:", err)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "SCIML_X64": "0"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "float32"
    assert "RAISED: `x` has dtype float64" in lines[1]
    assert "RAISED: `Dense.init(key, dtype=float64)` asks for 64-bit parameters" in lines[2]
