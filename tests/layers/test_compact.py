"""`compact` (DESIGN.md principle 4): a forward pass written as plain code over declared sublayers,
while params and state stay explicit nested pytrees and the layer stays pure."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sciml import layers as L

from .layer_cases import PreNormBlock

KEY = jax.random.key(0)
TRACES = []


@L.compact
class Residual(L.Layer):
    """A sublayer given as a field, and a helper method and property used inside `forward`."""

    inner: L.Layer
    gain: float = 1.0

    @property
    def doubled_gain(self):
        return 2 * self.gain

    def forward(self, x):
        return self.combine(x, self.inner(x))

    def combine(self, x, y):
        return x + self.doubled_gain / 2 * y


@L.compact
class TwiceNormalised(L.Layer):
    """A stateful sublayer called twice: the second call sees the state the first one left."""

    features: int

    def setup(self):
        self.norm = L.BatchNorm(self.features)
        self.drop = L.Dropout(0.5)
        self.dense = L.Dense(self.features, self.features)

    def forward(self, x):
        return self.drop(self.norm(self.dense(self.norm(x))))


@L.compact
class PerSample(L.Layer):
    """A stateless sublayer mapped over an axis inside `forward`."""

    def setup(self):
        self.mlp = L.MLP(3, 1, 4, 1)

    def forward(self, x):
        return jax.vmap(self.mlp)(x)


@jax.jit
def block_apply(params, x):
    TRACES.append(1)
    return PreNormBlock(8)(params, x)


@jax.jit
def block_by_hand(params, x):
    """`PreNormBlock.forward` written out with explicit params (outside `forward`, the sublayers are
    plain layers)."""
    block = PreNormBlock(8)
    h = x + block.attn(params["attn"], block.ln1(params["ln1"], x))
    return h + block.mlp(params["mlp"], block.ln2(params["ln2"], h))


def test_the_transformer_block_reads_as_three_lines_and_is_a_plain_layer():
    block = PreNormBlock(8)
    params, state = block.init(KEY)
    assert list(params) == ["ln1", "attn", "ln2", "mlp"]
    assert set(params["attn"]) == {"query", "key", "value", "out"}
    assert params["mlp"].keys() == {"layer_0", "layer_1"}
    assert state == {"ln1": {}, "attn": {"query": {}, "key": {}, "value": {}, "out": {}}, "ln2": {},
                     "mlp": {"layer_0": {}, "layer_1": {}}}

    x = jax.random.normal(jax.random.key(1), (2, 5, 8))
    np.testing.assert_allclose(block_apply(params, x), block_by_hand(params, x), rtol=1e-6)


def test_a_compact_layer_is_hashable_static_and_does_not_retrace():
    params, _ = PreNormBlock(8).init(KEY)
    assert PreNormBlock(8) == PreNormBlock(8) and hash(PreNormBlock(8)) == hash(PreNormBlock(8))
    assert PreNormBlock(8) != PreNormBlock(8, heads=4)
    TRACES.clear()
    block_apply(params, jnp.ones((3, 8)))
    block_apply(params, jnp.zeros((3, 8)))
    assert len(TRACES) == 1
    forward_static = jax.jit(lambda model, p, x: model(p, x), static_argnums=0)
    np.testing.assert_allclose(forward_static(PreNormBlock(8), params, jnp.ones((3, 8))),
                               block_apply(params, jnp.ones((3, 8))), rtol=1e-6)


def test_a_compact_layer_round_trips_through_json_and_prints_its_tree():
    block = PreNormBlock(8, heads=4)
    assert L.from_config(json.loads(json.dumps(block.to_config()))) == block
    text = str(block)
    assert text.splitlines()[0].startswith("PreNormBlock(dim=8, heads=4)")
    assert "├── attn: MultiHeadAttention(dim=8, heads=4)" in text and "query: Dense(8 => 8)" in text


def test_sublayers_may_be_fields_and_methods_and_properties_work_in_forward():
    model = Residual(L.Dense(2, 2, act="tanh"), gain=3.0)
    params, _ = model.init(KEY)
    assert list(params) == ["inner"]
    x = jnp.arange(2.0)
    np.testing.assert_allclose(model(params, x), x + 3.0 * model.inner(params["inner"], x), rtol=1e-6)
    rebuilt = L.from_config(json.loads(json.dumps(model.to_config())))
    assert rebuilt == model and rebuilt.inner == L.Dense(2, 2, act="tanh")


def test_state_of_stateful_sublayers_is_threaded_through_forward():
    model = TwiceNormalised(3)
    params, state = model.init(KEY)
    assert model.has_state()
    x = jax.random.normal(jax.random.key(1), (16, 3))
    y, new_state = model.apply(params, x, state)

    # By hand: norm, dense, norm again (from the state the first call left), dropout.
    h, s_norm = model.norm.apply(params["norm"], x, state["norm"])
    h, _ = model.dense.apply(params["dense"], h, state["dense"])
    h, s_norm = model.norm.apply(params["norm"], h, s_norm)
    expected, s_drop = model.drop.apply(params["drop"], h, state["drop"])
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    np.testing.assert_allclose(new_state["norm"]["running_mean"], s_norm["running_mean"], rtol=1e-6)
    assert jnp.array_equal(jax.random.key_data(new_state["drop"]["key"]), jax.random.key_data(s_drop["key"]))

    with pytest.raises(TypeError, match="carries state"):
        model(params, x)
    y_test, _ = model.apply(params, x, L.testmode(new_state))   # modes reach nested sublayers
    assert not bool(jnp.any(y_test == 0))


def test_stateless_sublayers_can_be_used_under_vmap_inside_forward():
    model = PerSample()
    params, _ = model.init(KEY)
    x = jnp.ones((5, 3))
    assert model(params, x).shape == (5, 1)


def test_mistakes_are_reported_when_the_class_is_defined():
    with pytest.raises(TypeError, match="not a subclass of `sciml.layers.Layer`"):
        @L.compact
        class NotALayer:
            def forward(self, x):
                return x

    with pytest.raises(TypeError, match="needs a method `forward"):
        @L.compact
        class NoForward(L.Layer):
            pass

    with pytest.raises(TypeError, match="writes `init`.*remove"):
        @L.compact
        class OwnInit(L.Layer):
            def init(self, key, dtype=jnp.float32):
                return {}, {}

            def forward(self, x):
                return x

    with pytest.raises(TypeError, match="immutable.*frozen=True"):
        @L.compact
        @dataclasses.dataclass
        class Mutable(L.Layer):
            def forward(self, x):
                return x


def test_mistakes_in_setup_and_forward_are_reported_when_they_happen():
    @L.compact
    class Shadowing(L.Layer):
        width: int = 2

        def setup(self):
            self.width = L.Dense(2, 2)

        def forward(self, x):
            return x

    with pytest.raises(AttributeError, match="assigns `self.width`, which is a field"):
        Shadowing()

    @L.compact
    class Assigning(L.Layer):
        def forward(self, x):
            self.cache = x
            return x

    with pytest.raises(AttributeError, match="a layer is immutable"):
        Assigning()({}, jnp.ones(2))

    @L.compact
    class ManyLayers(L.Layer):
        blocks: tuple = ()

        def forward(self, x):
            return x

    with pytest.raises(TypeError, match=r"holds several layers.*L\.Chain\(\*layers\)"):
        ManyLayers((L.Dense(2, 2), L.Dense(2, 2)))
