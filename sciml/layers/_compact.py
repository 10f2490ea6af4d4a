"""`compact`: write a layer's forward pass as plain code over its sublayers.

A compact layer declares its sublayers (as dataclass fields, or by assigning them in ``setup``) and
writes ``forward(self, x)``, in which each sublayer is called as ``self.name(x)``: its params and
state are looked up and its new state recorded behind the scenes. The decorator derives ``init``
and ``apply`` from that, so the result is an ordinary pure layer: params and state are nested dicts
keyed by sublayer name, the layer is hashable, and ``to_config`` works.
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any

import jax
import jax.numpy as jnp

from sciml.layers._core import Layer, _guard_apply, _guard_init

_SUBLAYERS = "_compact_sublayers"


def compact(cls: type) -> type:
    """Class decorator: derive ``init`` and ``apply`` from ``setup`` and ``forward``.

    The class subclasses :class:`Layer`; its annotated attributes become frozen-dataclass fields
    (hyper-parameters, and sublayers if they hold layers). ``setup(self)``, if defined, runs when the
    layer is built and may assign further sublayers (``self.mlp = L.MLP(...)``) and plain values
    computed from the hyper-parameters. ``forward(self, x)`` returns the output; inside it
    ``self.<sublayer>(x)`` applies that sublayer with its own params and state, and every other
    attribute or method works as usual.

    ``init(key, dtype)`` gives ``params = {name: sublayer params}`` and the same for the state;
    ``apply(params, x, state)`` runs ``forward`` and returns the sublayers' updated state (a
    stateful sublayer called twice sees the state its first call left). Stateless sublayers may be
    used inside ``jax.vmap``/``lax.scan`` within ``forward``; stateful ones may not.

    Raises:
        TypeError: when the class is not a ``Layer``, has no ``forward``, or defines ``init`` /
            ``apply`` / ``sublayers`` itself.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from sciml import layers as L
        >>> @L.compact
        ... class Block(L.Layer):
        ...     dim: int
        ...     heads: int = 2
        ...
        ...     def setup(self):
        ...         self.ln1 = L.LayerNorm(self.dim)
        ...         self.attn = L.MultiHeadAttention(self.dim, self.heads)
        ...         self.ln2 = L.LayerNorm(self.dim)
        ...         self.mlp = L.MLP(self.dim, self.dim, 4 * self.dim, 1, act="gelu")
        ...
        ...     def forward(self, x):
        ...         x = x + self.attn(self.ln1(x))
        ...         x = x + self.mlp(self.ln2(x))
        ...         return x
        >>> block = Block(8)
        >>> params, state = block.init(jax.random.key(0))
        >>> sorted(params)
        ['attn', 'ln1', 'ln2', 'mlp']
        >>> block(params, jnp.ones((5, 8))).shape
        (5, 8)
    """
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise TypeError(
            f"`@compact` decorates a layer class; {cls!r} is not a subclass of "
            f"`sciml.layers.Layer`. Write `class {getattr(cls, '__name__', 'MyLayer')}(L.Layer):`."
        )
    if not callable(getattr(cls, "forward", None)):
        raise TypeError(f"`@compact` class {cls.__name__} needs a method `forward(self, x)`.")
    for name in ("init", "apply", "sublayers"):
        if name in cls.__dict__:
            raise TypeError(
                f"`@compact` writes `{name}` of {cls.__name__} from `setup` and `forward`; remove "
                f"the `{name}` you defined, or drop `@compact` and write the layer by hand."
            )
    if "__dataclass_fields__" not in cls.__dict__:
        cls = dataclasses.dataclass(frozen=True)(cls)
    elif not cls.__dataclass_params__.frozen:
        raise TypeError(f"`@compact` layers are immutable: declare {cls.__name__} with `frozen=True`.")

    cls.__post_init__ = _with_setup(getattr(cls.__post_init__, "_sciml_without_setup", cls.__post_init__))
    cls.init = _guard_init(_init)
    cls.apply = _guard_apply(_apply)
    cls.sublayers = _sublayers
    return cls


def _with_setup(post_init):
    def __post_init__(self):
        post_init(self)
        sublayers = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Layer):
                sublayers[f.name] = value
            elif isinstance(value, (tuple, list)) and value and all(isinstance(v, Layer) for v in value):
                raise TypeError(
                    f"`{type(self).__name__}.{f.name}` holds several layers; a compact layer calls "
                    f"each sublayer by name. Wrap them in `L.Chain(*layers)`."
                )
        setup = getattr(type(self), "setup", None)
        if setup is not None:
            recorder = _SetupRecorder(self)
            setup(recorder)
            for name, value in recorder._assigned.items():
                object.__setattr__(self, name, value)
                if isinstance(value, Layer):
                    sublayers[name] = value
        object.__setattr__(self, _SUBLAYERS, sublayers)

    __post_init__._sciml_without_setup = post_init
    return __post_init__


def _sublayers(self) -> dict[str, Layer]:
    return dict(getattr(self, _SUBLAYERS))


def _init(self, key, dtype=jnp.float32):
    sublayers = getattr(self, _SUBLAYERS)
    keys = jax.random.split(key, max(len(sublayers), 1))
    params, state = {}, {}
    for (name, layer), k in zip(sublayers.items(), keys):
        params[name], state[name] = layer.init(k, dtype)
    return params, state


def _apply(self, params, x, state):
    scope = _Scope(self, params, state)
    y = type(self).forward(scope, x)
    return y, scope._new_state


class _Proxy:
    """Stands in for a layer as ``self``: reads fall through to the layer, methods are re-bound."""

    def __init__(self, layer: Layer):
        object.__setattr__(self, "_layer", layer)

    def __getattr__(self, name: str) -> Any:
        layer = object.__getattribute__(self, "_layer")
        value = getattr(layer, name)
        if isinstance(value, types.MethodType) and value.__self__ is layer:
            return types.MethodType(value.__func__, self)
        return value


class _SetupRecorder(_Proxy):
    """``self`` inside ``setup``: records attribute assignments instead of failing on a frozen layer."""

    def __init__(self, layer: Layer):
        super().__init__(layer)
        object.__setattr__(self, "_assigned", {})

    def __getattr__(self, name: str) -> Any:
        assigned = object.__getattribute__(self, "_assigned")
        return assigned[name] if name in assigned else super().__getattr__(name)

    def __setattr__(self, name: str, value: Any) -> None:
        layer = object.__getattribute__(self, "_layer")
        if name in {f.name for f in dataclasses.fields(layer)}:
            raise AttributeError(
                f"`setup` of {type(layer).__name__} assigns `self.{name}`, which is a field "
                f"(a hyper-parameter given to the constructor). Use another name."
            )
        self._assigned[name] = value


class _Scope(_Proxy):
    """``self`` inside ``forward``: sublayers are callables bound to their params and state."""

    def __init__(self, layer: Layer, params: Any, state: Any):
        super().__init__(layer)
        object.__setattr__(self, "_params", params)
        object.__setattr__(self, "_new_state", dict(state))

    def __getattr__(self, name: str) -> Any:
        sublayers = getattr(object.__getattribute__(self, "_layer"), _SUBLAYERS)
        if name in sublayers:
            return _BoundSublayer(self, name, sublayers[name])
        return super().__getattr__(name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"`forward` assigns `self.{name}`, but a layer is immutable: keep intermediate values "
            f"in local variables, and state in a stateful sublayer."
        )


class _BoundSublayer:
    """A sublayer inside ``forward``: ``sub(x)`` applies it with its params and threads its state."""

    def __init__(self, scope: _Scope, name: str, layer: Layer):
        self._scope, self._name, self.layer = scope, name, layer

    def __call__(self, x: Any) -> Any:
        params = self._scope._params[self._name]
        new_state = self._scope._new_state
        y, state = self.layer.apply(params, x, new_state[self._name])
        if self.layer.has_state():
            new_state[self._name] = state
        return y
