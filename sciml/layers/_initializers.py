"""Named parameter initialisers, selectable per layer as ``init_weight="orthogonal"`` and extendable
with :func:`register_initializer`.

An initialiser is ``fn(key, shape, dtype) -> array`` (the signature of ``jax.nn.initializers``); the
array has exactly ``dtype``, complex dtypes included. Fan-in and fan-out are read from the last two
axes, ``(..., in, out)``, which is the layout of ``Dense``'s weight.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from sciml.layers._registry import FunctionRegistry

INITIALIZERS = FunctionRegistry("initializer", "register_initializer")

_I = jax.nn.initializers


def register_initializer(name: str, fn: Callable) -> None:
    """Give an initialiser a name so that layers using it can be saved and loaded.

    Args:
        name: the name to store, e.g. ``"small_normal"``.
        fn: ``fn(key, shape, dtype) -> array`` of that shape and dtype.

    Example:
        >>> import jax
        >>> from sciml import layers as L
        >>> L.register_initializer("small_normal", jax.nn.initializers.normal(1e-3))
        >>> L.Dense(2, 3, init_weight="small_normal").init(jax.random.key(0))[0]["weight"].shape
        (2, 3)
    """
    INITIALIZERS.add(name, fn)


def _zeros(key, shape, dtype):
    return jnp.zeros(shape, dtype)


def _ones(key, shape, dtype):
    return jnp.ones(shape, dtype)


for _name, _fn in [
    ("glorot_uniform", _I.glorot_uniform()),
    ("glorot_normal", _I.glorot_normal()),
    ("xavier_uniform", _I.glorot_uniform()),
    ("xavier_normal", _I.glorot_normal()),
    ("he_uniform", _I.he_uniform()),
    ("he_normal", _I.he_normal()),
    ("kaiming_uniform", _I.he_uniform()),
    ("kaiming_normal", _I.he_normal()),
    ("lecun_uniform", _I.lecun_uniform()),
    ("lecun_normal", _I.lecun_normal()),
    ("orthogonal", _I.orthogonal()),
    ("normal", _I.normal(1.0)),  # standard normal N(0, 1), as Lux's randn and PyTorch's Embedding
    ("zeros", _zeros),
    ("ones", _ones),
]:
    INITIALIZERS.add(_name, _fn)
INITIALIZERS.freeze_builtins()


def initialize(init: str | Callable, key: jax.Array, shape: tuple[int, ...], dtype) -> jax.Array:
    """Run the initialiser ``init`` (a registered name or a callable) and check what it returns."""
    value = INITIALIZERS.resolve(init)(key, shape, dtype)
    if value.shape != tuple(shape) or value.dtype != jnp.dtype(dtype):
        raise ValueError(
            f"the initialiser {init!r} returned shape {value.shape} and dtype {value.dtype}; "
            f"expected shape {tuple(shape)} and dtype {jnp.dtype(dtype)}. An initialiser is "
            f"`fn(key, shape, dtype)` and must honour both."
        )
    return value
