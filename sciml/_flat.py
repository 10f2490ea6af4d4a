"""Lossless flattening of a pytree of arrays into one vector.

Shared by `sciml.layers.flatten` (parameter vectors) and the solvers (a pytree state is integrated as
one vector). Unlike `jax.flatten_util.ravel_pytree`, `unflatten(v)` returns every leaf in ``v``'s
dtype: nothing is cast back down, so complex stays complex and float64 stays float64.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np


def flatten(tree: Any) -> tuple[jax.Array, Callable[[jax.Array], Any]]:
    """Flatten ``tree`` into one 1-D vector and return ``(vector, unflatten)``.

    The vector's dtype is ``jnp.result_type`` of all leaves (mixed float32/float64 leaves give float64,
    any complex leaf gives complex), so flattening never loses precision. ``unflatten(v)`` splits a
    vector of the same length back into the tree's structure and shapes, each leaf in ``v``'s dtype.

    Raises:
        ValueError: from ``unflatten`` when ``v`` is not 1-D of the flattened length.

    Example:
        >>> import jax.numpy as jnp
        >>> v, unflatten = flatten({"w": jnp.ones((2, 2)), "b": jnp.zeros(2)})
        >>> v.shape, unflatten(v)["w"].shape
        ((6,), (2, 2))
    """
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    leaves = [jnp.asarray(leaf) for leaf in leaves]
    shapes = [leaf.shape for leaf in leaves]
    sizes = [int(np.prod(shape, dtype=np.int64)) for shape in shapes]
    dtype = jnp.result_type(*leaves) if leaves else jnp.zeros(()).dtype
    if leaves:
        vector = jnp.concatenate([jnp.ravel(leaf).astype(dtype) for leaf in leaves])
    else:
        vector = jnp.zeros((0,), dtype)
    total = sum(sizes)
    offsets = np.cumsum([0] + sizes)

    def unflatten(v: jax.Array) -> Any:
        v = jnp.asarray(v)
        if v.shape != (total,):
            raise ValueError(
                f"`unflatten` expects a 1-D vector of length {total} (the flattened size); "
                f"got shape {tuple(v.shape)}."
            )
        parts = [v[offsets[i]:offsets[i + 1]].reshape(shapes[i]) for i in range(len(shapes))]
        return jax.tree_util.tree_unflatten(treedef, parts)

    return vector, unflatten
