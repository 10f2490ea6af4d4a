"""Training and test mode, kept in the state (Lux semantics).

Layers that behave differently while training (``BatchNorm``, ``Dropout``) keep a boolean under the
key ``"training"`` in their state. It starts as ``True``; :func:`testmode` and :func:`trainmode` set
it throughout a state tree, for every sublayer at once. The flag is an array, so it may be a traced
value under ``jax.jit``: the layers select with ``jnp.where``, never with a Python ``if``.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

TRAINING = "training"


def trainmode(state: Any) -> Any:
    """A copy of ``state`` with every layer in training mode (batch statistics, dropout on).

    Args:
        state: a state tree returned by ``init`` or ``apply``.

    Example:
        >>> import jax
        >>> from sciml import layers as L
        >>> model = L.Chain(L.Dense(2, 2), L.Dropout(0.5))
        >>> params, state = model.init(jax.random.key(0))
        >>> bool(L.trainmode(L.testmode(state))["layer_1"]["training"])
        True
    """
    return _set_training(state, True)


def testmode(state: Any) -> Any:
    """A copy of ``state`` with every layer in test mode (running statistics, dropout off).

    Args:
        state: a state tree returned by ``init`` or ``apply``.

    Example:
        >>> import jax
        >>> from sciml import layers as L
        >>> model = L.Chain(L.Dense(2, 2), L.BatchNorm(2))
        >>> params, state = model.init(jax.random.key(0))
        >>> bool(L.testmode(state)["layer_1"]["training"])
        False
    """
    return _set_training(state, False)


def _set_training(state: Any, training: bool) -> Any:
    if isinstance(state, dict):
        return {key: jnp.asarray(training) if key == TRAINING else _set_training(value, training)
                for key, value in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(_set_training(value, training) for value in state)
    return state
