"""JSON encoding of layer hyper-parameters, used by `Layer.to_config` and `sciml.layers.from_config`.

Plain JSON values (``None``, ``bool``, ``int``, ``float``, ``str``) and lists are kept as they are.
Everything else becomes a one-key dict whose key says what it was, so that decoding gives back an
equal value:

========================  ============================================
value                     encoding
========================  ============================================
``(1, 2)``                ``{"__tuple__": [1, 2]}``
a layer                   ``{"__layer__": layer.to_config()}``
``jnp.float32``           ``{"__dtype__": "float32"}`` (decodes to a ``numpy.dtype``)
``1 + 2j``                ``{"__complex__": [1.0, 2.0]}``
``float("inf")``          ``{"__float__": "inf"}`` (strict JSON has no inf or nan)
a registered function     its name, a string (layers store names, see ``function_field``)
========================  ============================================

Callables that are not registered, dicts and other objects cannot be described and raise an error
that names the field and the fix. Nothing is ever imported or evaluated while decoding.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax.numpy as jnp
import numpy as np

_TAGS = ("__tuple__", "__layer__", "__dtype__", "__complex__", "__float__")


def encode_value(value: Any, where: str, register: str | None = None) -> Any:
    """Encode one hyper-parameter value as JSON-able data.

    ``where`` names the value in errors; ``register`` is the public function that names functions
    of this field's kind (e.g. ``"register_activation"``), used in the error for an unregistered
    callable. A value with a ``to_config`` method (a layer) is stored as its description.
    """

    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": repr(value)}  # strict JSON has no inf or nan
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, complex):
        return {"__complex__": [encode_value(value.real, where), encode_value(value.imag, where)]}
    if isinstance(value, np.generic) and not isinstance(value, np.void):
        return encode_value(value.item(), where, register)
    if callable(getattr(value, "to_config", None)):
        return {"__layer__": value.to_config()}
    if isinstance(value, tuple):
        return {"__tuple__": [encode_value(v, f"{where}[{i}]", register) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [encode_value(v, f"{where}[{i}]", register) for i, v in enumerate(value)]
    dtype = _as_dtype(value)
    if dtype is not None:
        return {"__dtype__": dtype.name}
    if callable(value):
        how = (f"`sciml.layers.{register}('my_fn', fn)`" if register else
               "`sciml.layers.register_activation('my_fn', fn)` (or `register_initializer`, "
               "`register_connection` for those kinds)")
        raise ValueError(
            f"`{where}` is the function {getattr(value, '__name__', value)!r}, which is not "
            f"registered, so the layer cannot be described as JSON (`to_config`, `sciml.save`). "
            f"Register it under a name before building the layer, with {how}; the same "
            f"registration must run before `sciml.load`."
        )
    raise ValueError(
        f"`{where}` is {value!r} of type {type(value).__name__}, which cannot be described as "
        f"JSON. Layer hyper-parameters must be None, bool, int, float, complex, str, dtypes, "
        f"layers, registered functions, or tuples/lists of these."
    )


def decode_value(data: Any, build_layer: Callable[[dict], Any]) -> Any:
    """Invert :func:`encode_value`; ``build_layer`` turns a layer's description back into the layer."""
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return [decode_value(v, build_layer) for v in data]
    if isinstance(data, dict) and len(data) == 1:
        (tag, payload), = data.items()
        if tag == "__tuple__":
            return tuple(decode_value(v, build_layer) for v in payload)
        if tag == "__layer__":
            return build_layer(payload)
        if tag == "__dtype__":
            return jnp.dtype(payload)
        if tag == "__complex__":
            return complex(decode_value(payload[0], build_layer), decode_value(payload[1], build_layer))
        if tag == "__float__" and payload in ("inf", "-inf", "nan"):
            return float(payload)
    raise ValueError(
        f"cannot decode the hyper-parameter {data!r:.200} from a model description: expected a "
        f"JSON value or a dict with one of the keys {', '.join(_TAGS)}."
    )


def _as_dtype(value: Any) -> np.dtype | None:
    """``value`` as a numpy dtype if it is a dtype or a scalar type such as ``jnp.float32``."""
    if isinstance(value, np.dtype):
        return value
    if isinstance(value, type) and (issubclass(value, np.generic) or hasattr(value, "dtype")):
        try:
            return np.dtype(value)
        except TypeError:
            return None
    return None
