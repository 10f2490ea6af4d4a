"""Chain: layers applied one after the other; MLP: a Chain of Dense layers."""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from sciml.layers._core import Layer
from sciml.layers._dense import Dense
from sciml.layers._wrapped import WrappedFunction


@dataclasses.dataclass(frozen=True, init=False)
class Chain(Layer):
    """``y = layer_n(... layer_1(layer_0(x)))``, threading each layer's params and state.

    ``Chain(a, b, c)`` keeps the layers' params and state under ``"layer_0"``, ``"layer_1"``, ...;
    ``Chain(encoder=a, decoder=b)`` uses the given names instead. A plain callable among the layers
    is wrapped in :class:`WrappedFunction`.

    Attributes:
        layers: the layers, in order.
        names: the key of each layer in params and state.

    Parameters:
        <name>: params of each layer, under its name (layer_0, layer_1, ... or the names given)

    State:
        <name>: state of each layer, under its name

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from sciml import layers as L
        >>> model = L.Chain(L.Dense(2, 16, act="tanh"), L.Dense(16, 1))
        >>> params, state = model.init(jax.random.key(0))
        >>> sorted(params)
        ['layer_0', 'layer_1']
        >>> model(params, jnp.ones((4, 2))).shape
        (4, 1)
    """

    layers: tuple[Layer, ...]
    names: tuple[str, ...]

    def __init__(self, *layers: Layer | Callable, **named_layers: Layer | Callable):
        if layers and named_layers:
            raise TypeError(
                "`Chain` takes its layers either all positionally (`Chain(a, b)`, keys layer_0, "
                "layer_1) or all by name (`Chain(encoder=a, decoder=b)`), not a mix."
            )
        if named_layers:
            names, layers = tuple(named_layers), tuple(named_layers.values())
        else:
            names = tuple(f"layer_{i}" for i in range(len(layers)))
        if not layers:
            raise TypeError("`Chain()` needs at least one layer, e.g. `Chain(L.Dense(2, 1))`.")
        layers = tuple(_as_layer(layer, name) for name, layer in zip(names, layers))
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "names", names)
        self.__post_init__()

    @classmethod
    def from_fields(cls, fields):
        layers, names = fields["layers"], fields["names"]
        if names == tuple(f"layer_{i}" for i in range(len(layers))):
            return cls(*layers)
        return cls(**dict(zip(names, layers)))

    def sublayers(self):
        return dict(zip(self.names, self.layers))

    def init(self, key, dtype=jnp.float32):
        keys = jax.random.split(key, len(self.layers))
        params, state = {}, {}
        for name, layer, k in zip(self.names, self.layers, keys):
            params[name], state[name] = layer.init(k, dtype)
        return params, state

    def apply(self, params, x, state):
        new_state = {}
        for name, layer in zip(self.names, self.layers):
            x, new_state[name] = layer.apply(params[name], x, state[name])
        return x, new_state

    def describe(self) -> str:
        return "Chain"

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index: int | str) -> Layer:
        """The layer at a position (``model[0]``) or of a name (``model["encoder"]``)."""
        return self.sublayers()[index] if isinstance(index, str) else self.layers[index]


def MLP(in_size: int, out_size: int, width: int, depth: int, act="tanh", final_act=None,
        use_bias: bool = True, init_weight="glorot_uniform", init_bias="zeros") -> Chain:
    """A multilayer perceptron: a :class:`Chain` of ``depth + 1`` :class:`Dense` layers.

    ``depth`` counts the hidden layers, so ``MLP(2, 2, 64, 2)`` is 2 => 64 => 64 => 2 and
    ``depth=0`` is a single ``Dense(in_size, out_size)``. Hidden layers use ``act``, the last one
    ``final_act``. The result is an ordinary ``Chain`` (it prints, saves and loads as one).

    Parameters:
        layer_<i>: params of the i-th Dense layer (weight and bias), i = 0 .. depth

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from sciml import layers as L
        >>> model = L.MLP(2, 1, width=32, depth=2)
        >>> [layer.describe() for layer in model.layers]
        ['Dense(2 => 32, tanh)', 'Dense(32 => 32, tanh)', 'Dense(32 => 1)']
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise ValueError(f"`MLP(depth=...)` counts hidden layers and must be an integer >= 0; got {depth!r}.")
    sizes = [in_size] + [width] * depth + [out_size]
    acts = [act] * depth + [final_act]
    return Chain(*(Dense(n_in, n_out, act=a, use_bias=use_bias, init_weight=init_weight, init_bias=init_bias)
                   for n_in, n_out, a in zip(sizes[:-1], sizes[1:], acts)))


def _as_layer(value: Layer | Callable, name: str) -> Layer:
    if isinstance(value, Layer):
        return value
    if callable(value):
        return WrappedFunction(value)
    raise TypeError(f"`Chain` got {value!r} for {name!r}; expected a layer or a function of x.")
