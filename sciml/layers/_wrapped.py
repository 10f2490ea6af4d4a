"""WrappedFunction: a plain function as a layer without parameters."""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax.numpy as jnp

from sciml.layers._activations import ACTIVATIONS
from sciml.layers._core import Layer
from sciml.layers._registry import function_field


@dataclasses.dataclass(frozen=True)
class WrappedFunction(Layer):
    """``y = fn(x)``: a function of the input as a layer, e.g. a reshape or a fixed feature map.

    ``Chain`` wraps plain callables in it automatically. To save a model that contains one, register
    ``fn`` first with :func:`register_activation`.

    Attributes:
        fn: a registered function name (see :func:`register_activation`) or a callable.

    Parameters:
        none

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from sciml import layers as L
        >>> layer = L.WrappedFunction("sin")
        >>> params, state = layer.init(jax.random.key(0))
        >>> layer(params, jnp.zeros(3)).tolist()
        [0.0, 0.0, 0.0]
    """

    fn: str | Callable = function_field(ACTIVATIONS, None)

    def __post_init__(self):
        super().__post_init__()
        if self.fn is None:
            raise TypeError("`WrappedFunction(fn)` needs a function `fn(x) -> y` or a registered name.")

    def init(self, key, dtype=jnp.float32):
        return {}, {}

    def apply(self, params, x, state):
        return ACTIVATIONS.resolve(self.fn)(x), state

    def describe(self) -> str:
        return f"WrappedFunction({getattr(self.fn, '__name__', self.fn)})"
