"""Parameter utilities: `flatten` (one lossless vector), `count`, and explicit `cast`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sciml import layers as L
from sciml._flat import flatten as _flat_flatten

F32, F64, C64, C128 = jnp.float32, jnp.float64, jnp.complex64, jnp.complex128

MIXED = {"w": jnp.arange(6, dtype=F32).reshape(2, 3) / 7, "b": jnp.array([1 / 3], F64),
         "z": {"c": jnp.array([1 + 2j, 3 - 4j], C64)}, "s": jnp.array(2.5, F32)}


def test_flatten_is_the_lossless_flatten_of_sciml():
    assert L.flatten is _flat_flatten


def test_flatten_of_mixed_leaves_uses_the_widest_dtype_and_loses_nothing():
    v, unflatten = L.flatten(MIXED)
    assert v.dtype == C128 and v.shape == (6 + 1 + 2 + 1,)
    back = unflatten(v)
    for got, want in zip(jax.tree_util.tree_leaves(back), jax.tree_util.tree_leaves(MIXED)):
        assert got.dtype == C128 and got.shape == want.shape
        np.testing.assert_array_equal(got, np.asarray(want).astype(np.complex128))


@pytest.mark.parametrize("dtype", [F32, F64, C64, C128], ids=lambda d: jnp.dtype(d).name)
def test_unflatten_gives_leaves_in_the_vectors_dtype(dtype):
    params, _ = L.MLP(2, 1, 4, 1).init(jax.random.key(0))
    v, unflatten = L.flatten(params)
    assert v.dtype == F32
    back = unflatten(v.astype(dtype))
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(back)} == {jnp.dtype(dtype)}
    if dtype == F32:
        assert all(bool(jnp.all(a == b)) for a, b in
                   zip(jax.tree_util.tree_leaves(back), jax.tree_util.tree_leaves(params)))


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([F32, F64, C64, C128]),
                          st.lists(st.integers(0, 3), max_size=2).map(tuple)), min_size=1, max_size=4),
       st.integers(0, 2**16))
def test_flatten_round_trips_any_tree_exactly(leaves, seed):
    rng = np.random.default_rng(seed)
    tree = {f"leaf_{i}": jnp.asarray((rng.normal(size=shape) + (1j * rng.normal(size=shape)
                                      if jnp.issubdtype(dtype, jnp.complexfloating) else 0)).astype(dtype))
            for i, (dtype, shape) in enumerate(leaves)}
    v, unflatten = L.flatten(tree)
    assert v.dtype == jnp.result_type(*tree.values())
    back = unflatten(v)
    for key, leaf in tree.items():
        assert back[key].shape == leaf.shape and back[key].dtype == v.dtype
        np.testing.assert_array_equal(back[key], np.asarray(leaf).astype(v.dtype))


def test_unflatten_rejects_a_vector_of_the_wrong_length():
    _, unflatten = L.flatten(MIXED)
    with pytest.raises(ValueError, match="length 10.*got shape \\(9,\\)"):
        unflatten(jnp.zeros(9))


def test_count():
    model = L.Chain(L.Dense(2, 64), L.Dense(64, 2, use_bias=False), L.BatchNorm(2))
    params, _ = model.init(jax.random.key(0))
    assert L.count(params) == (2 * 64 + 64) + 64 * 2 + 2 * 2
    assert L.count(MIXED) == 10
    assert L.count({}) == 0


def test_cast_converts_floating_leaves_and_keeps_complex_complex():
    cast = L.cast({**MIXED, "n": jnp.arange(3), "flag": jnp.asarray(True), "key": jax.random.key(0)}, F64)
    assert cast["w"].dtype == F64 and cast["b"].dtype == F64 and cast["s"].dtype == F64
    assert cast["z"]["c"].dtype == C128  # matching precision: the imaginary part is kept
    np.testing.assert_array_equal(cast["z"]["c"], np.asarray(MIXED["z"]["c"]).astype(np.complex128))
    assert cast["n"].dtype == jnp.arange(3).dtype and cast["flag"].dtype == jnp.bool_
    assert jax.dtypes.issubdtype(cast["key"].dtype, jax.dtypes.prng_key)


def test_cast_down_and_to_complex():
    down = L.cast(MIXED, F32)
    assert down["b"].dtype == F32 and down["z"]["c"].dtype == C64
    to_complex = L.cast(MIXED, C128)
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(to_complex)} == {jnp.dtype(C128)}


def test_cast_of_a_whole_model_state_keeps_its_key_and_flag():
    params, state = L.Chain(L.BatchNorm(2), L.Dropout(0.1)).init(jax.random.key(0))
    state64 = L.cast(state, F64)
    assert state64["layer_0"]["running_mean"].dtype == F64
    assert state64["layer_1"]["key"].dtype == state["layer_1"]["key"].dtype


def test_cast_refuses_a_non_floating_target():
    with pytest.raises(TypeError, match="floating or complex dtype.*got int32"):
        L.cast(MIXED, jnp.int32)
