"""Dense: an affine map followed by an activation."""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from sciml.layers._activations import ACTIVATIONS, apply_activation
from sciml.layers._core import Layer
from sciml.layers._initializers import INITIALIZERS, initialize
from sciml.layers._registry import function_field
from sciml.layers._validate import check_features, positive_int


@dataclasses.dataclass(frozen=True)
class Dense(Layer):
    """``y = act(x @ weight + bias)`` on the last axis of ``x``; any leading axes are batch axes.

    The output dtype is what JAX promotion gives for ``x`` and the parameters: float64 input on
    float32 parameters gives float64, complex input gives complex. The input is never converted.

    Attributes:
        in_size: size of the last axis of ``x``.
        out_size: size of the last axis of ``y``.
        act: an activation name (``"tanh"``, ``"relu"``, ``"gelu"``, ``"softplus"``,
            ``"sigmoid"``, ``"swish"``, ...; see :func:`register_activation`), a callable, or
            ``None`` for the identity.
        use_bias: whether to add ``bias``.
        init_weight: initialiser of ``weight`` (a name such as ``"glorot_uniform"``,
            ``"he_normal"``, ``"orthogonal"``, or ``fn(key, shape, dtype)``).
        init_bias: initialiser of ``bias``.

    Parameters:
        weight: (in_size, out_size)
        bias: (out_size,) if use_bias

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from sciml import layers as L
        >>> layer = L.Dense(2, 3, act="tanh")
        >>> params, state = layer.init(jax.random.key(0))
        >>> layer(params, jnp.ones((5, 2))).shape
        (5, 3)
        >>> layer(params, jnp.ones(2, jnp.float64)).dtype   # float64 input is never lowered
        dtype('float64')
    """

    in_size: int
    out_size: int
    act: str | Callable | None = function_field(ACTIVATIONS, None)
    use_bias: bool = True
    init_weight: str | Callable = function_field(INITIALIZERS, "glorot_uniform")
    init_bias: str | Callable = function_field(INITIALIZERS, "zeros")

    def __post_init__(self):
        super().__post_init__()
        positive_int(self, "in_size")
        positive_int(self, "out_size")

    def init(self, key, dtype=jnp.float32):
        k_weight, k_bias = jax.random.split(key)
        params = {"weight": initialize(self.init_weight, k_weight, (self.in_size, self.out_size), dtype)}
        if self.use_bias:
            params["bias"] = initialize(self.init_bias, k_bias, (self.out_size,), dtype)
        return params, {}

    def apply(self, params, x, state):
        check_features(self, x, self.in_size, "in_size")
        y = x @ params["weight"]
        if self.use_bias:
            y = y + params["bias"]
        return apply_activation(self.act, y), state

    def describe(self) -> str:
        act = "" if self.act is None else f", {getattr(self.act, '__name__', self.act)}"
        bias = "" if self.use_bias else ", use_bias=False"
        return f"Dense({self.in_size} => {self.out_size}{act}{bias})"
