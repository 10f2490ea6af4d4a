"""`to_config` describes a layer tree as JSON and `from_config` rebuilds an equal layer, using only
classes and functions registered in this process (what `sciml.save` / `sciml.load` rely on)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sciml import layers as L
from sciml.layers._config import decode_value, encode_value

from .layer_cases import CASE_IDS, CASES


def json_round_trip(layer):
    return L.from_config(json.loads(json.dumps(layer.to_config())))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_every_layer_round_trips_through_json(case):
    rebuilt = json_round_trip(case.layer)
    assert rebuilt == case.layer and hash(rebuilt) == hash(case.layer)
    assert type(rebuilt) is type(case.layer)


def test_positional_and_named_chains_round_trip():
    positional = L.Chain(L.Dense(2, 3), L.Dense(3, 1))
    named = L.Chain(encoder=L.Dense(2, 3), decoder=L.Dense(3, 1))
    assert json_round_trip(positional) == positional and json_round_trip(named) == named
    assert json_round_trip(named).names == ("encoder", "decoder")


def test_registered_callables_are_stored_by_name():
    assert L.Dense(2, 3, act=jnp.tanh) == L.Dense(2, 3, act="tanh")
    assert L.Dense(2, 3, act=jnp.tanh).to_config()["fields"]["act"] == "tanh"
    assert L.SkipConnection(L.Dense(2, 2), connection="mul").to_config()["fields"]["connection"] == "mul"


def test_an_unregistered_activation_cannot_be_described_and_says_how_to_fix_it():
    layer = L.Dense(2, 3, act=lambda x: x ** 3)
    params, _ = layer.init(jax.random.key(0))
    assert layer(params, jnp.ones(2)).shape == (3,)  # it works; it only cannot be saved
    with pytest.raises(ValueError, match=r"Dense\.act.*not registered.*register_activation"):
        layer.to_config()


def test_an_unregistered_initializer_or_connection_names_its_own_register_function():
    with pytest.raises(ValueError, match="register_initializer"):
        L.Dense(2, 3, init_weight=lambda key, shape, dtype: jnp.zeros(shape, dtype)).to_config()
    with pytest.raises(ValueError, match="register_connection"):
        L.Parallel(lambda a, b: a - b, L.Dense(2, 2), L.Dense(2, 2)).to_config()


def test_registering_a_function_makes_the_layer_describable():
    def cubic(x):
        return x ** 3

    L.register_activation("test_config.cubic", cubic)
    layer = L.Chain(L.Dense(2, 3, act=cubic), cubic)
    assert layer.layers[0].act == "test_config.cubic" and layer.layers[1].fn == "test_config.cubic"
    assert json_round_trip(layer) == layer


def test_a_name_cannot_be_registered_for_a_different_function():
    with pytest.raises(ValueError, match="already registered"):
        L.register_activation("tanh", jnp.sin)


def test_unknown_names_fail_at_construction():
    with pytest.raises(ValueError, match="'tahn', which is not a known activation.*tanh"):
        L.Dense(2, 3, act="tahn")
    with pytest.raises(ValueError, match="not a known initializer"):
        L.Dense(2, 3, init_weight="glorot")


def test_unknown_layer_types_fail_with_a_hint_and_nothing_is_imported():
    with pytest.raises(ValueError, match="unknown layer type 'os.system'.*import the module"):
        L.from_config({"type": "os.system", "fields": {}})
    with pytest.raises(ValueError, match="must be a dict with 'type' and 'fields'"):
        L.from_config(["Dense"])


def test_two_classes_with_one_name_make_descriptions_ambiguous():
    import dataclasses

    def make():
        @dataclasses.dataclass(frozen=True)
        class Twin(L.Layer):
            pass
        return Twin

    make()  # defined twice at the same qualified name: the second replaces the first
    twin = make()()
    assert L.from_config(twin.to_config()) == twin

    @dataclasses.dataclass(frozen=True)
    class Twin(L.Layer):  # a different class (other qualified name) with the same name
        pass

    with pytest.raises(ValueError, match="2 layer classes are named 'Twin'"):
        Twin().to_config()


@pytest.mark.parametrize("value", [None, True, 3, 2.5, "tanh", (1, (2, 3)), [1, 2], 1 + 2j,
                                   np.dtype("float64"), np.int64(4), L.Dense(2, 3)], ids=repr)
def test_hyper_parameter_values_round_trip(value):
    decoded = decode_value(json.loads(json.dumps(encode_value(value, "test"))), L.from_config)
    assert decoded == value and type(decoded) in (type(value), int)


def test_non_finite_floats_are_stored_as_strict_json():
    encoded = encode_value((float("inf"), complex(1, float("-inf"))), "x")
    assert json.loads(json.dumps(encoded, allow_nan=False)) == encoded
    assert decode_value(encoded, L.from_config) == (float("inf"), complex(1, float("-inf")))
    assert np.isnan(decode_value(encode_value(float("nan"), "x"), L.from_config))


def test_jax_scalar_types_decode_to_equal_dtypes():
    assert decode_value(encode_value(jnp.float32, "dtype"), L.from_config) == np.dtype("float32")


def test_objects_that_are_not_hyper_parameters_are_refused():
    with pytest.raises(ValueError, match="`f` is .* of type ndarray, which cannot be described"):
        encode_value(np.ones(3), "f")
    with pytest.raises(ValueError, match="cannot decode"):
        decode_value({"__pickle__": "..."}, L.from_config)
