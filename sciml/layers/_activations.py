"""Named activation functions, selectable as ``act="tanh"`` and extendable with
:func:`register_activation`.

Every entry keeps its input's dtype (float64 stays float64: no float32 constants inside), which the
layer tests check against a float64 reference.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from sciml.layers._registry import FunctionRegistry

ACTIVATIONS = FunctionRegistry("activation", "register_activation")


def register_activation(name: str, fn: Callable) -> None:
    """Give a function a name so that layers using it can be saved and loaded.

    A layer built with a registered callable stores its name, so ``layer.to_config()`` describes it
    and ``sciml.layers.from_config`` rebuilds an equal layer (in a process that registers the same
    name). The names serve ``Dense(act=...)`` and ``WrappedFunction(fn)``. Register before building
    the layer.

    Args:
        name: the name to store, e.g. ``"cube"``.
        fn: the function, ``fn(x) -> y``.

    Example:
        >>> import jax.numpy as jnp
        >>> from sciml import layers as L
        >>> def cube(x):
        ...     return x ** 3
        >>> L.register_activation("cube", cube)
        >>> L.Dense(2, 3, act=cube).to_config()["fields"]["act"]
        'cube'
    """
    ACTIVATIONS.add(name, fn)


def _identity(x):
    return x


for _name, _fn in [
    ("identity", _identity),
    ("tanh", jnp.tanh),
    ("relu", jax.nn.relu),
    ("gelu", jax.nn.gelu),  # tanh approximation, as in Lux and PyTorch's "tanh" variant
    ("softplus", jax.nn.softplus),
    ("sigmoid", jax.nn.sigmoid),
    ("swish", jax.nn.swish),
    ("silu", jax.nn.silu),
    ("elu", jax.nn.elu),
    ("celu", jax.nn.celu),
    ("selu", jax.nn.selu),
    ("leaky_relu", jax.nn.leaky_relu),
    ("mish", jax.nn.mish),
    ("softsign", jax.nn.soft_sign),
    ("log_sigmoid", jax.nn.log_sigmoid),
    ("hard_tanh", jax.nn.hard_tanh),
    ("relu6", jax.nn.relu6),
    ("sin", jnp.sin),
    ("cos", jnp.cos),
    ("exp", jnp.exp),
    ("abs", jnp.abs),
    ("square", jnp.square),
]:
    ACTIVATIONS.add(_name, _fn)
ACTIVATIONS.freeze_builtins()


def apply_activation(act: str | Callable | None, x: jax.Array) -> jax.Array:
    """``act(x)``, where ``act`` is a registered name, a callable, or ``None`` (identity)."""
    return x if act is None else ACTIVATIONS.resolve(act)(x)
