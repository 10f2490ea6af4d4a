"""Dropout: random zeroing while training, the identity in test mode."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from sciml.layers._core import Layer
from sciml.layers._mode import TRAINING


@dataclasses.dataclass(frozen=True)
class Dropout(Layer):
    """In training mode, each entry of ``x`` is zeroed with probability ``rate`` and the others are
    scaled by ``1 / (1 - rate)``; in test mode (:func:`testmode`) ``y = x``.

    The random key lives in the state and is split on every call, so successive calls draw new
    masks and a run is reproducible from the key given to ``init``. The layer starts in training
    mode.

    Attributes:
        rate: the probability of zeroing an entry, ``0 <= rate < 1``.

    Parameters:
        none

    State:
        key: a PRNG key, split on every call
        training: ()

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from sciml import layers as L
        >>> layer = L.Dropout(0.5)
        >>> params, state = layer.init(jax.random.key(0))
        >>> y, state = layer.apply(params, jnp.ones(1000), state)
        >>> sorted(set(y.tolist()))
        [0.0, 2.0]
        >>> y, state = layer.apply(params, jnp.ones(3), L.testmode(state))
        >>> y.tolist()
        [1.0, 1.0, 1.0]
    """

    rate: float

    stateful = True

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.rate, bool) or not isinstance(self.rate, (int, float)) or not 0 <= self.rate < 1:
            raise ValueError(f"`Dropout(rate=...)` must be a number in [0, 1); got {self.rate!r}.")

    def init(self, key, dtype=jnp.float32):
        return {}, {"key": key, TRAINING: jnp.asarray(True)}

    def apply(self, params, x, state):
        key, mask_key = jax.random.split(state["key"])
        keep = 1.0 - self.rate
        kept = jax.random.bernoulli(mask_key, keep, jnp.shape(x))
        dropped = jnp.where(kept, x / keep, jnp.zeros_like(x))
        y = jnp.where(state[TRAINING], dropped, x)
        return y, {"key": key, TRAINING: state[TRAINING]}
