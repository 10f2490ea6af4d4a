"""A batched integration loop that leaves its record buffers alone.

Under ``jax.vmap``, a ``lax.while_loop`` whose condition differs between trajectories runs the body for
every trajectory and then selects, leaf by leaf of the whole carry, between the new and the old value.
For the buffers that record every accepted step (``(max_steps + 1, n)`` states, step polynomials) that
select copies the whole buffer at every step: a batch of 256 neural-ODE solves with ``max_steps=4096``
spent most of its time copying (the forward pass of Direct took 57 ms against 9 ms with
``max_steps=256``).

The loop instead runs while *any* trajectory is active (:func:`any_lane`, whose batching rule reduces
over the batch), and the body selects only the small leaves itself. A finished trajectory keeps
writing its buffers, but only into slots that the loop masks or never reads: one past its last
accepted step, plus one scratch row so that such a write is never clamped onto a valid slot. (The same
technique as equinox's ``unvmap_any``, used by diffrax's loops.)
"""

from __future__ import annotations

import jax
import jax.extend.core
import jax.numpy as jnp
from jax.interpreters import batching, mlir

any_lane_p = jax.extend.core.Primitive("sciml_any_lane")


def any_lane(pred) -> jax.Array:
    """``jnp.any(pred)`` over the batch axes of ``vmap`` too: a scalar bool that no ``vmap`` batches."""
    return any_lane_p.bind(jnp.asarray(pred, bool))


def _impl(pred):
    return jnp.any(pred)


def _batch(args, dims):
    (pred,), _ = args, dims
    return any_lane(pred), None  # not batched


any_lane_p.def_impl(_impl)
any_lane_p.def_abstract_eval(lambda pred: jax.core.ShapedArray((), jnp.bool_))
batching.primitive_batchers[any_lane_p] = _batch
mlir.register_lowering(any_lane_p, mlir.lower_fun(_impl, multiple_results=False))


def while_active(active, body, state, buffers: frozenset):
    """``lax.while_loop(active, body, state)`` for a ``NamedTuple`` state whose fields named in
    ``buffers`` are written only at slots that are harmless for a finished trajectory: under ``vmap``
    those fields are never selected between old and new values, every other field is."""

    def step(s):
        on = active(s)
        new = body(s)
        kept = {name: jax.tree_util.tree_map(lambda a, b: jnp.where(on, a, b), getattr(new, name), getattr(s, name))
                for name in new._fields if name not in buffers}
        return new._replace(**kept)

    return jax.lax.while_loop(lambda s: any_lane(active(s)), step, state)
