"""The layer protocol (Lux semantics): immutable hyper-parameters, explicit params and state.

A layer is a frozen dataclass that subclasses :class:`Layer`. ``init(key, dtype)`` returns
``(params, state)`` as plain pytrees (nested dicts of arrays); ``apply(params, x, state)`` returns
``(y, state)``. Because layers hold hyper-parameters only, they are hashable and can be static
arguments to ``jax.jit``.

Every concrete layer class is enrolled in a registry by name when it is defined, so that
``to_config`` / ``from_config`` can describe and rebuild a layer tree as JSON (used by ``sciml.save``
and ``sciml.load``) without importing anything by name from a file.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, ClassVar

import jax.numpy as jnp
import numpy as np

from sciml._config import PrecisionError, check_precision, x64_enabled
from sciml._typing import Params, PRNGKeyArray, State
from sciml.layers._registry import canonicalise_functions

#: class name -> {"module.qualname": class}. Redefining a class (same module and qualname, e.g. a
#: re-run notebook cell) replaces the entry; two different classes with one name make that name
#: ambiguous, which is an error only when a description is written or read with it.
_REGISTRY: dict[str, dict[str, type["Layer"]]] = {}


class Layer:
    """Base class of every layer: a frozen dataclass of hyper-parameters with a Lux-style protocol.

    A subclass is written as ``@dataclasses.dataclass(frozen=True)`` and implements
    ``init(key, dtype) -> (params, state)`` and ``apply(params, x, state) -> (y, state)``. A layer
    built from other layers lists them in ``sublayers()`` and keeps each one's params and state under
    the same name, e.g. ``{"layer_0": {...}, "layer_1": {...}}``; printing, ``has_state`` and the
    empty state of the shorthand call are derived from that.

    Defining a subclass also

    * registers it by class name, so that :func:`from_config` can rebuild it;
    * wraps its ``init`` and ``apply`` so that a float64 request is refused with
      :class:`sciml.PrecisionError`, rather than truncated, when JAX's x64 mode is off (a no-op
      with x64 on, the default);
    * turns registered functions given as hyper-parameters (``act=jnp.tanh``) into their names.

    Example:
        >>> import dataclasses, jax, jax.numpy as jnp
        >>> from sciml import layers as L
        >>> @dataclasses.dataclass(frozen=True)
        ... class Affine(L.Layer):            # y = a * x + b, with learned scalars a and b
        ...     a0: float = 1.0
        ...
        ...     def init(self, key, dtype=jnp.float32):
        ...         return {"a": jnp.full((), self.a0, dtype), "b": jnp.zeros((), dtype)}, {}
        ...
        ...     def apply(self, params, x, state):
        ...         return params["a"] * x + params["b"], state
        >>> layer = Affine(a0=2.0)
        >>> params, state = layer.init(jax.random.key(0))
        >>> layer(params, jnp.arange(3.0)).tolist()
        [0.0, 2.0, 4.0]
        >>> L.from_config(layer.to_config()) == layer
        True
    """

    #: True for layers whose ``init`` returns a non-empty state of their own (BatchNorm, Dropout).
    stateful: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _REGISTRY.setdefault(cls.__name__, {})[f"{cls.__module__}.{cls.__qualname__}"] = cls
        for name, guard in (("init", _guard_init), ("apply", _guard_apply)):
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, "_sciml_guarded", False):
                setattr(cls, name, guard(method))

    def __post_init__(self):
        canonicalise_functions(self)

    # -- the protocol -------------------------------------------------------------------------
    def init(self, key: PRNGKeyArray, dtype=jnp.float32) -> tuple[Params, State]:
        """Return ``(params, state)`` for this layer, with floating leaves of ``dtype``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement `init`.")

    def apply(self, params: Params, x: Any, state: State) -> tuple[Any, State]:
        """Return ``(y, new_state)``; the output dtype is JAX's promotion of ``x`` and ``params``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement `apply`.")

    def sublayers(self) -> dict[str, "Layer"]:
        """The layers this layer is built from, by the name their params and state are kept under."""
        return {}

    def has_state(self) -> bool:
        """Whether this layer or any of its sublayers carries state."""
        return self.stateful or any(sub.has_state() for sub in self.sublayers().values())

    def __call__(self, params: Params, x: Any) -> Any:
        """Stateless shorthand: ``model(params, x)`` is ``model.apply(params, x, state)[0]``."""
        if self.has_state():
            raise TypeError(
                f"`{type(self).__name__}` carries state (e.g. BatchNorm statistics or a Dropout "
                f"key), so the shorthand `model(params, x)` would drop it. Use "
                f"`params, state = model.init(key)` and `y, state = model.apply(params, x, state)`."
            )
        y, _ = self.apply(params, x, self._empty_state())
        return y

    def _empty_state(self) -> State:
        return {name: sub._empty_state() for name, sub in self.sublayers().items()}

    # -- description ----------------------------------------------------------------------------
    def describe(self) -> str:
        """A one-line description: the class name and the hyper-parameters that differ from their
        defaults (sublayers are left out: printing shows them as a tree)."""
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not f.repr or isinstance(value, Layer) or _is_default(f, value):
                continue
            parts.append(f"{f.name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def __str__(self) -> str:
        """The layer tree with parameter shapes and counts (computed with ``jax.eval_shape``, so
        printing allocates no parameters)."""
        from sciml.layers._summary import summary

        return summary(self)

    def to_config(self) -> dict:
        """A JSON-able description ``{"type": class name, "fields": {...}}`` of this layer."""
        from sciml.layers._config import encode_value

        _registered_name(type(self))
        fields = {}
        for f in dataclasses.fields(self):
            if f.init:
                registry = f.metadata.get("registry")
                fields[f.name] = encode_value(getattr(self, f.name), f"{type(self).__name__}.{f.name}",
                                              registry.register_name if registry else None)
        return {"type": type(self).__name__, "fields": fields}

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> "Layer":
        """Build the layer from its decoded fields. Layers whose constructor does not take their
        fields as keywords (``Chain(*layers)``) override this."""
        return cls(**fields)


def from_config(config: dict) -> Layer:
    """Rebuild a layer tree from :meth:`Layer.to_config` output.

    Only classes already defined in this process (registered) are used: nothing is imported by name.

    Args:
        config: the dict that ``layer.to_config()`` returned (after a JSON round trip, too).

    Raises:
        ValueError: when the description is malformed or names an unknown layer type.

    Example:
        >>> from sciml import layers as L
        >>> model = L.Chain(L.Dense(2, 8, act="tanh"), L.Dense(8, 1))
        >>> L.from_config(model.to_config()) == model
        True
    """
    from sciml.layers._config import decode_value

    if not isinstance(config, dict) or "type" not in config or "fields" not in config:
        raise ValueError(f"a layer description must be a dict with 'type' and 'fields'; got {config!r:.200}.")
    name = config["type"]
    classes = _REGISTRY.get(name)
    if not classes:
        raise ValueError(
            f"unknown layer type {name!r} in the model description. If it is your own layer, "
            f"import the module that defines it before calling `sciml.load`."
        )
    cls = _registered_name(next(iter(classes.values())))
    fields = {k: decode_value(v, from_config) for k, v in config["fields"].items()}
    try:
        return cls.from_fields(fields)
    except TypeError as err:
        raise ValueError(f"cannot rebuild layer {name!r} from its description: {err}") from None


def _registered_name(cls: type) -> type:
    """``cls``, after checking that its class name identifies it alone among registered layers."""
    classes = _REGISTRY.get(cls.__name__, {})
    if len(classes) > 1:
        raise ValueError(
            f"{len(classes)} layer classes are named {cls.__name__!r} ({', '.join(sorted(classes))}), "
            f"so a model description naming it would be ambiguous. Rename one of them."
        )
    return cls


def _is_default(f: dataclasses.Field, value: Any) -> bool:
    if f.default is not dataclasses.MISSING:
        default = f.default
    elif f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    else:
        return False
    try:
        return bool(value == default)
    except Exception:  # an array-like or exotic value: show it
        return False


_WIDE_DTYPES = (np.dtype(np.float64), np.dtype(np.complex128))


def _guard_init(init):
    @functools.wraps(init)
    def guarded_init(self, key, dtype=jnp.float32):
        if not x64_enabled() and np.dtype(dtype) in _WIDE_DTYPES:
            raise PrecisionError(
                f"`{type(self).__name__}.init(key, dtype={np.dtype(dtype).name})` asks for 64-bit "
                f"parameters, but JAX's x64 mode is off (SCIML_X64=0), so they would be silently "
                f"created as 32-bit. Unset SCIML_X64 (sciml enables x64 by default) or pass "
                f"`dtype=jnp.float32`."
            )
        return init(self, key, dtype)

    guarded_init._sciml_guarded = True
    return guarded_init


def _guard_apply(apply):
    @functools.wraps(apply)
    def guarded_apply(self, params, x, state):
        check_precision(x, "x")
        check_precision(params, "params")
        return apply(self, params, x, state)

    guarded_apply._sciml_guarded = True
    return guarded_apply
