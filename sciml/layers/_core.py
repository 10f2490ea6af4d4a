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
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

_REGISTRY: dict[str, type["Layer"]] = {}


class Layer:
    """Base class of every layer. Subclasses are ``@dataclasses.dataclass(frozen=True)``."""

    #: True for layers whose ``init`` returns a non-empty state (BatchNorm, Dropout).
    stateful: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    # -- the protocol -------------------------------------------------------------------------
    def init(self, key: jax.Array, dtype=jnp.float32) -> tuple[Any, Any]:
        """Return ``(params, state)`` for this layer, with floating leaves of ``dtype``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement `init`.")

    def apply(self, params: Any, x: Any, state: Any) -> tuple[Any, Any]:
        """Return ``(y, new_state)``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement `apply`.")

    def has_state(self) -> bool:
        """Whether this layer (or any sub-layer) carries state. Composite layers override this."""
        return self.stateful

    def __call__(self, params: Any, x: Any) -> Any:
        """Stateless shorthand: ``model(params, x)`` is ``model.apply(params, x, {})[0]``."""
        if self.has_state():
            raise TypeError(
                f"`{type(self).__name__}` carries state (e.g. BatchNorm statistics or a Dropout "
                f"key), so the shorthand `model(params, x)` would drop it. Use "
                f"`params, state = model.init(key)` and `y, state = model.apply(params, x, state)`."
            )
        y, _ = self.apply(params, x, self._empty_state())
        return y

    def _empty_state(self) -> Any:
        return {}

    # -- description as JSON ------------------------------------------------------------------
    def to_config(self) -> dict:
        """A JSON-able description ``{"type": class name, "fields": {...}}`` of this layer."""
        from sciml.layers._config import encode_value

        fields = {f.name: encode_value(getattr(self, f.name), f"{type(self).__name__}.{f.name}")
                  for f in dataclasses.fields(self) if f.init}
        return {"type": type(self).__name__, "fields": fields}


def from_config(config: dict) -> Layer:
    """Rebuild a layer tree from :meth:`Layer.to_config` output.

    Only classes already defined in this process (registered) are used: nothing is imported by name.

    Raises:
        ValueError: when the description is malformed or names an unknown layer type.
    """
    from sciml.layers._config import decode_value

    if not isinstance(config, dict) or "type" not in config or "fields" not in config:
        raise ValueError(f"a layer description must be a dict with 'type' and 'fields'; got {config!r:.200}.")
    name = config["type"]
    cls = _REGISTRY.get(name)
    if cls is None:
        raise ValueError(
            f"unknown layer type {name!r} in the model description. If it is your own layer, "
            f"import the module that defines it before calling `sciml.load`."
        )
    fields = {k: decode_value(v) for k, v in config["fields"].items()}
    try:
        return cls(**fields)
    except TypeError as err:
        raise ValueError(f"cannot rebuild layer {name!r} from its description: {err}") from None
