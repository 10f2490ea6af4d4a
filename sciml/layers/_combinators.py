"""Branching combinators: Parallel (several layers on one input) and SkipConnection (a residual)."""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from sciml.layers._connections import CONNECTIONS
from sciml.layers._core import Layer
from sciml.layers._registry import function_field


@dataclasses.dataclass(frozen=True, init=False)
class Parallel(Layer):
    """``y = connection(layer_0(x), layer_1(x), ...)``: several layers side by side.

    If ``x`` is a tuple with one entry per layer, layer ``i`` gets ``x[i]`` (as in Lux); otherwise
    every layer gets ``x``. With ``connection=None`` the result is the tuple of the outputs.

    Attributes:
        connection: ``"add"``, ``"mul"``, ``"concat"`` (last axis), a name registered with
            :func:`register_connection`, a callable ``fn(*ys)``, or ``None``.
        layers: the branches.

    Parameters:
        layer_<i>: params of the i-th branch

    State:
        layer_<i>: state of the i-th branch

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from sciml import layers as L
        >>> model = L.Parallel("concat", L.Dense(2, 3), L.Dense(2, 4))
        >>> params, state = model.init(jax.random.key(0))
        >>> model(params, jnp.ones(2)).shape
        (7,)
    """

    connection: str | Callable | None = function_field(CONNECTIONS, None)
    layers: tuple[Layer, ...] = ()

    def __init__(self, connection: str | Callable | None, *layers: Layer):
        if not layers or not all(isinstance(layer, Layer) for layer in layers):
            raise TypeError(f"`Parallel(connection, *layers)` needs one or more layers; got {layers!r:.200}.")
        object.__setattr__(self, "connection", connection)
        object.__setattr__(self, "layers", tuple(layers))
        self.__post_init__()

    @classmethod
    def from_fields(cls, fields):
        return cls(fields["connection"], *fields["layers"])

    def sublayers(self):
        return {f"layer_{i}": layer for i, layer in enumerate(self.layers)}

    def init(self, key, dtype=jnp.float32):
        keys = jax.random.split(key, len(self.layers))
        params, state = {}, {}
        for (name, layer), k in zip(self.sublayers().items(), keys):
            params[name], state[name] = layer.init(k, dtype)
        return params, state

    def apply(self, params, x, state):
        split = isinstance(x, tuple) and len(x) == len(self.layers)
        ys, new_state = [], {}
        for i, (name, layer) in enumerate(self.sublayers().items()):
            y, new_state[name] = layer.apply(params[name], x[i] if split else x, state[name])
            ys.append(y)
        if self.connection is None:
            return tuple(ys), new_state
        return CONNECTIONS.resolve(self.connection)(*ys), new_state

    def describe(self) -> str:
        return f"Parallel({getattr(self.connection, '__name__', self.connection)!s})"


@dataclasses.dataclass(frozen=True)
class SkipConnection(Layer):
    """``y = connection(layer(x), x)``; with the default ``"add"``, the residual ``layer(x) + x``.

    Attributes:
        layer: the layer on the branch.
        connection: ``"add"``, ``"mul"``, ``"concat"``, a registered name, or a callable
            ``fn(layer_output, x)``.

    Parameters:
        layer: params of the wrapped layer

    State:
        layer: state of the wrapped layer

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from sciml import layers as L
        >>> block = L.SkipConnection(L.Dense(3, 3, act="tanh"))
        >>> params, state = block.init(jax.random.key(0))
        >>> block(params, jnp.ones((2, 3))).shape
        (2, 3)
    """

    layer: Layer
    connection: str | Callable = function_field(CONNECTIONS, "add")

    def __post_init__(self):
        super().__post_init__()
        if not isinstance(self.layer, Layer):
            raise TypeError(f"`SkipConnection(layer)` needs a layer; got {self.layer!r:.200}.")
        if self.connection is None:
            raise TypeError("`SkipConnection(connection=None)` is not allowed: use \"add\" or a function.")

    def sublayers(self):
        return {"layer": self.layer}

    def init(self, key, dtype=jnp.float32):
        params, state = self.layer.init(key, dtype)
        return {"layer": params}, {"layer": state}

    def apply(self, params, x, state):
        y, layer_state = self.layer.apply(params["layer"], x, state["layer"])
        return CONNECTIONS.resolve(self.connection)(y, x), {"layer": layer_state}

    def describe(self) -> str:
        return f"SkipConnection({getattr(self.connection, '__name__', self.connection)!s})"
