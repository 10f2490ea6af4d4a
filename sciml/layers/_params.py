"""Utilities on parameter (and state) trees: one flat vector, counting, explicit casting."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from sciml._flat import flatten  # noqa: F401  (re-exported as sciml.layers.flatten)


def count(params: Any) -> int:
    """The number of scalar entries in all array leaves of ``params`` (a complex entry counts once).

    Args:
        params: a pytree of arrays, e.g. from ``init``.

    Example:
        >>> import jax
        >>> from sciml import layers as L
        >>> params, _ = L.Dense(2, 3).init(jax.random.key(0))
        >>> L.count(params)
        9
    """
    return int(sum(np.prod(jnp.shape(leaf), dtype=np.int64) for leaf in jax.tree_util.tree_leaves(params)))


def cast(params: Any, dtype) -> Any:
    """``params`` with every floating leaf converted to ``dtype``, explicitly (as Lux's ``f64``).

    Real floating leaves become ``dtype``; complex leaves become the complex dtype of the same
    precision (``cast(p, jnp.float64)`` turns complex64 into complex128, so no imaginary part is
    dropped); a complex ``dtype`` makes every floating leaf complex. Integer, boolean and key leaves
    are left as they are, so a whole state (a Dropout key, a training flag) can be cast too.

    Args:
        params: a pytree of arrays.
        dtype: a floating or complex dtype, e.g. ``jnp.float64``.

    Raises:
        TypeError: if ``dtype`` is not a floating or complex dtype.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from sciml import layers as L
        >>> params, _ = L.Dense(2, 3).init(jax.random.key(0))
        >>> L.cast(params, jnp.float64)["weight"].dtype
        dtype('float64')
    """
    target = jnp.dtype(dtype)
    if not jnp.issubdtype(target, jnp.inexact):
        raise TypeError(
            f"`cast(params, dtype)` converts floating parameters, so `dtype` must be a floating or "
            f"complex dtype such as `jnp.float64`; got {target}."
        )
    real = jnp.finfo(target).dtype
    complex_ = jnp.result_type(real, jnp.complex64)

    def convert(leaf):
        leaf_dtype = jnp.result_type(leaf)
        if jnp.issubdtype(leaf_dtype, jnp.complexfloating):
            return jnp.asarray(leaf).astype(complex_)
        if jnp.issubdtype(leaf_dtype, jnp.floating):
            return jnp.asarray(leaf).astype(target)
        return leaf

    return jax.tree_util.tree_map(convert, params)
