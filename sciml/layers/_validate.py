"""Checks of hyper-parameters and input shapes, with messages that name the layer and the fix.

Shapes are static under ``jax.jit``, so these checks raise ordinary exceptions at trace time.
"""

from __future__ import annotations

import operator
from typing import Any

import jax.numpy as jnp


def positive_int(layer: Any, name: str, *, allow_zero: bool = False) -> None:
    """Check that the field ``name`` of ``layer`` is an int (> 0, or >= 0 with ``allow_zero``)."""
    value = getattr(layer, name)
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not _is_int(value) or value < low:
        raise ValueError(
            f"`{type(layer).__name__}({name}=...)` must be an integer >= {low}; got {value!r}."
        )
    object.__setattr__(layer, name, operator.index(value))


def shape_tuple(layer: Any, name: str) -> None:
    """Normalise the field ``name`` of ``layer`` to a tuple of ints (an int ``n`` means ``(n,)``)."""
    value = getattr(layer, name)
    shape = (value,) if _is_int(value) else value
    if not isinstance(shape, (tuple, list)) or not all(_is_int(n) and n >= 1 for n in shape):
        raise ValueError(
            f"`{type(layer).__name__}({name}=...)` must be a positive int or a tuple of positive "
            f"ints; got {value!r}."
        )
    object.__setattr__(layer, name, tuple(operator.index(n) for n in shape))


def check_features(layer: Any, x: Any, size: int, field: str) -> None:
    """Check that the last axis of ``x`` has ``size`` entries (the layer's ``field``)."""
    shape = jnp.shape(x)
    if not shape or shape[-1] != size:
        raise ValueError(
            f"{layer.describe()} expects input whose last axis has {field}={size} entries; got an "
            f"input of shape {tuple(shape)}. Check the previous layer's output size."
        )


def check_trailing(layer: Any, x: Any, shape: tuple[int, ...], field: str) -> None:
    """Check that the trailing axes of ``x`` are ``shape`` (the layer's ``field``)."""
    got = tuple(jnp.shape(x))
    if len(got) < len(shape) or got[len(got) - len(shape):] != shape:
        raise ValueError(
            f"{layer.describe()} expects input whose trailing axes are {field}={shape}; got an "
            f"input of shape {got}."
        )


def _is_int(value: Any) -> bool:
    try:
        operator.index(value)
    except TypeError:
        return False
    return True
