"""Named connections: how ``Parallel`` and ``SkipConnection`` combine several outputs into one.

A connection is ``fn(*ys) -> y``. Built in: ``"add"`` (sum), ``"mul"`` (product) and ``"concat"``
(concatenation along the last axis). :func:`register_connection` adds more.
"""

from __future__ import annotations

import functools
import operator
from typing import Callable

import jax.numpy as jnp

from sciml.layers._registry import FunctionRegistry

CONNECTIONS = FunctionRegistry("connection", "register_connection")


def register_connection(name: str, fn: Callable) -> None:
    """Give a connection a name so that layers using it can be saved and loaded.

    Args:
        name: the name to store, e.g. ``"max"``.
        fn: ``fn(*ys) -> y``, combining the outputs of the branches.

    Example:
        >>> import jax.numpy as jnp
        >>> from sciml import layers as L
        >>> def elementwise_max(*ys):
        ...     return jnp.max(jnp.stack(ys), axis=0)
        >>> L.register_connection("max", elementwise_max)
        >>> L.Parallel(elementwise_max, L.Dense(2, 3), L.Dense(2, 3)).connection
        'max'
    """
    CONNECTIONS.add(name, fn)


def _add(*ys):
    return functools.reduce(operator.add, ys)


def _mul(*ys):
    return functools.reduce(operator.mul, ys)


def _concat(*ys):
    return jnp.concatenate(ys, axis=-1)


for _name, _fn in [("add", _add), ("mul", _mul), ("concat", _concat)]:
    CONNECTIONS.add(_name, _fn)
CONNECTIONS.freeze_builtins()
