"""Embedding: a learned vector for each integer token."""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax.numpy as jnp

from sciml.layers._core import Layer
from sciml.layers._initializers import INITIALIZERS, initialize
from sciml.layers._registry import function_field
from sciml.layers._validate import positive_int


@dataclasses.dataclass(frozen=True)
class Embedding(Layer):
    """``y = weight[x]``: integer indices ``x`` of any shape give vectors, ``y.shape == x.shape + (dim,)``.

    Indices lie in ``[0, num)`` (negative ones count from the end, as in numpy). An index out of
    range gives a row of NaN rather than silently reusing another row.

    Attributes:
        num: number of entries (the vocabulary size).
        dim: size of each vector.
        init_weight: initialiser of ``weight`` (default ``"normal"``: standard normal).

    Parameters:
        weight: (num, dim)

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from sciml import layers as L
        >>> layer = L.Embedding(10, 4)
        >>> params, state = layer.init(jax.random.key(0))
        >>> layer(params, jnp.array([[1, 2, 3]])).shape
        (1, 3, 4)
    """

    num: int
    dim: int
    init_weight: str | Callable = function_field(INITIALIZERS, "normal")

    def __post_init__(self):
        super().__post_init__()
        positive_int(self, "num")
        positive_int(self, "dim")

    def init(self, key, dtype=jnp.float32):
        return {"weight": initialize(self.init_weight, key, (self.num, self.dim), dtype)}, {}

    def apply(self, params, x, state):
        if not jnp.issubdtype(jnp.result_type(x), jnp.integer):
            raise TypeError(
                f"{self.describe()} looks up integer indices; got an input of dtype "
                f"{jnp.result_type(x)}. Pass token ids, e.g. `x.astype(jnp.int32)` if they are "
                f"whole numbers stored as floats."
            )
        return jnp.take(params["weight"], x, axis=0), state
