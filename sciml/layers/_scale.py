"""Scale: an elementwise affine map with learned weight and bias."""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from sciml.layers._activations import ACTIVATIONS, apply_activation
from sciml.layers._core import Layer
from sciml.layers._initializers import INITIALIZERS, initialize
from sciml.layers._registry import function_field
from sciml.layers._validate import check_trailing, shape_tuple


@dataclasses.dataclass(frozen=True)
class Scale(Layer):
    """``y = act(x * weight + bias)``, elementwise over the trailing axes ``shape`` of ``x``.

    Attributes:
        shape: the trailing axes of ``x`` that get their own weight (an int ``n`` means ``(n,)``).
        use_bias: whether to add ``bias``.
        act: an activation name, a callable, or ``None``.
        init_weight: initialiser of ``weight`` (default ``"ones"``: the identity map).
        init_bias: initialiser of ``bias``.

    Parameters:
        weight: shape
        bias: shape if use_bias

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from sciml import layers as L
        >>> layer = L.Scale(3)
        >>> params, state = layer.init(jax.random.key(0))
        >>> layer(params, jnp.arange(3.0)).tolist()
        [0.0, 1.0, 2.0]
    """

    shape: int | tuple[int, ...]
    use_bias: bool = True
    act: str | Callable | None = function_field(ACTIVATIONS, None)
    init_weight: str | Callable = function_field(INITIALIZERS, "ones")
    init_bias: str | Callable = function_field(INITIALIZERS, "zeros")

    def __post_init__(self):
        super().__post_init__()
        shape_tuple(self, "shape")

    def init(self, key, dtype=jnp.float32):
        k_weight, k_bias = jax.random.split(key)
        params = {"weight": initialize(self.init_weight, k_weight, self.shape, dtype)}
        if self.use_bias:
            params["bias"] = initialize(self.init_bias, k_bias, self.shape, dtype)
        return params, {}

    def apply(self, params, x, state):
        check_trailing(self, x, self.shape, "shape")
        y = x * params["weight"]
        if self.use_bias:
            y = y + params["bias"]
        return apply_activation(self.act, y), state
