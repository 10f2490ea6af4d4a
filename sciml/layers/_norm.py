"""Normalisation over the feature axes of each sample: LayerNorm and RMSNorm.

Statistics are computed in the input's own dtype (float64 stays float64), and the variance of
complex input is the mean of ``|x - mean|**2`` (real), so complex input stays complex.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from sciml.layers._core import Layer
from sciml.layers._validate import check_trailing, shape_tuple


def abs2(x: jax.Array) -> jax.Array:
    """``|x|**2``, real for complex ``x``, in ``x``'s precision."""
    return jnp.real(x * jnp.conj(x)) if jnp.iscomplexobj(x) else x * x


def _affine_params(shape, affine: bool, with_bias: bool, dtype):
    if not affine:
        return {}
    params = {"scale": jnp.ones(shape, dtype)}
    if with_bias:
        params["bias"] = jnp.zeros(shape, dtype)
    return params


@dataclasses.dataclass(frozen=True)
class LayerNorm(Layer):
    """``y = (x - mean) / sqrt(var + eps) * scale + bias``, statistics over the trailing ``shape`` axes.

    Attributes:
        shape: the trailing axes normalised together (an int ``n`` means ``(n,)``).
        eps: added to the variance.
        affine: whether to learn ``scale`` and ``bias`` (initialised to ones and zeros).

    Parameters:
        scale: shape if affine
        bias: shape if affine

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from sciml import layers as L
        >>> layer = L.LayerNorm(4)
        >>> params, state = layer.init(jax.random.key(0))
        >>> y = layer(params, jnp.arange(8.0).reshape(2, 4))
        >>> [round(float(v), 6) for v in y.mean(axis=-1)]
        [0.0, 0.0]
    """

    shape: int | tuple[int, ...]
    eps: float = 1e-5
    affine: bool = True

    def __post_init__(self):
        super().__post_init__()
        shape_tuple(self, "shape")

    def init(self, key, dtype=jnp.float32):
        return _affine_params(self.shape, self.affine, True, dtype), {}

    def apply(self, params, x, state):
        check_trailing(self, x, self.shape, "shape")
        axes = tuple(range(-len(self.shape), 0))
        centred = x - jnp.mean(x, axis=axes, keepdims=True)
        y = centred * jax.lax.rsqrt(jnp.mean(abs2(centred), axis=axes, keepdims=True) + self.eps)
        if self.affine:
            y = y * params["scale"] + params["bias"]
        return y, state


@dataclasses.dataclass(frozen=True)
class RMSNorm(Layer):
    """``y = x / sqrt(mean(|x|**2) + eps) * scale``, over the trailing ``shape`` axes (no centring).

    Attributes:
        shape: the trailing axes normalised together (an int ``n`` means ``(n,)``).
        eps: added to the mean square.
        affine: whether to learn ``scale`` (initialised to ones).

    Parameters:
        scale: shape if affine

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from sciml import layers as L
        >>> layer = L.RMSNorm(2)
        >>> params, state = layer.init(jax.random.key(0))
        >>> [round(float(v), 4) for v in layer(params, jnp.array([3.0, 4.0]))]
        [0.8485, 1.1314]
    """

    shape: int | tuple[int, ...]
    eps: float = 1e-6
    affine: bool = True

    def __post_init__(self):
        super().__post_init__()
        shape_tuple(self, "shape")

    def init(self, key, dtype=jnp.float32):
        return _affine_params(self.shape, self.affine, False, dtype), {}

    def apply(self, params, x, state):
        check_trailing(self, x, self.shape, "shape")
        axes = tuple(range(-len(self.shape), 0))
        y = x * jax.lax.rsqrt(jnp.mean(abs2(x), axis=axes, keepdims=True) + self.eps)
        if self.affine:
            y = y * params["scale"]
        return y, state
