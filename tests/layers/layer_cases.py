"""One example of every layer with an input maker, shared by the generic layer tests.

A layer exported from `sciml.layers` is covered by the dtype, gradient, docstring and config tests
the moment it has a case here (`test_every_exported_layer_has_a_case` enforces that).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from sciml import layers as L


@L.compact
class PreNormBlock(L.Layer):
    """A pre-norm transformer block, the bar for `compact`: the forward pass reads as three lines."""

    dim: int
    heads: int = 2

    def setup(self):
        self.ln1 = L.LayerNorm(self.dim)
        self.attn = L.MultiHeadAttention(self.dim, self.heads)
        self.ln2 = L.LayerNorm(self.dim)
        self.mlp = L.MLP(self.dim, self.dim, 2 * self.dim, 1, act="gelu")

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        x = x + self.mlp(self.ln2(x))
        return x


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    layer: L.Layer
    features: tuple[int, ...]          # trailing input axes
    integer_input: int | None = None   # number of token ids for Embedding-like layers
    complex_ok: bool = True            # whether complex input is meaningful

    def input(self, key, dtype, batch: tuple[int, ...] = (2,)) -> jax.Array:
        shape = batch + self.features
        if self.integer_input is not None:
            return jax.random.randint(key, shape, 0, self.integer_input)
        if jnp.issubdtype(dtype, jnp.complexfloating):
            k1, k2 = jax.random.split(key)
            real = jnp.finfo(dtype).dtype
            return jax.random.normal(k1, shape, real) + 1j * jax.random.normal(k2, shape, real)
        return jax.random.normal(key, shape, dtype)


CASES = [
    Case("Dense", L.Dense(3, 4, act="tanh"), (3,)),
    Case("Dense-nobias-relu", L.Dense(3, 4, act="relu", use_bias=False, init_weight="he_normal"), (3,),
         complex_ok=False),
    Case("MLP", L.MLP(3, 2, 8, 2, act="softplus"), (3,), complex_ok=False),
    Case("Chain-named", L.Chain(encoder=L.Dense(3, 5, act="sigmoid"), decoder=L.Dense(5, 3)), (3,)),
    Case("Parallel", L.Parallel("concat", L.Dense(3, 2), L.Scale(3)), (3,)),
    Case("SkipConnection", L.SkipConnection(L.Dense(3, 3, act="gelu")), (3,)),
    Case("WrappedFunction", L.WrappedFunction("sin"), (3,)),
    Case("Scale", L.Scale(3, act="swish"), (3,), complex_ok=False),
    Case("LayerNorm", L.LayerNorm((2, 3)), (2, 3)),
    Case("RMSNorm", L.RMSNorm(3), (3,)),
    Case("BatchNorm", L.BatchNorm(3), (3,), complex_ok=False),
    Case("Dropout", L.Dropout(0.25), (3,)),
    Case("Embedding", L.Embedding(7, 3), (), integer_input=7, complex_ok=False),
    Case("MultiHeadAttention", L.MultiHeadAttention(4, 2, causal=True), (3, 4), complex_ok=False),
    Case("compact-PreNormBlock", PreNormBlock(4), (3, 4), complex_ok=False),
]

CASE_IDS = [case.name for case in CASES]


def run(layer: L.Layer, params, x, state) -> jax.Array:
    """Apply ``layer``; a tuple output (``Parallel(None, ...)``) is not used here."""
    y, _ = layer.apply(params, x, state)
    return y


def real_loss(layer: L.Layer, state, x) -> Callable:
    """``params -> real scalar``, for gradients of any layer (complex outputs through ``|y|^2``)."""
    def loss(params):
        y = run(layer, params, x, state)
        return jnp.sum(jnp.real(y * jnp.conj(y)))
    return loss
