"""A host callback that runs on every device of the running program: how a check inside `jit` raises
when the program is split over several devices (or processes) without leaving the others waiting.

`jax.pure_callback` in an automatically partitioned program runs on one device. If it raises there,
that device stops, and every other device waits for it at the next collective (at the latest, the one
that hands them the callback's result) until XLA aborts the whole process: a failed solve of a sharded
batch turned into a hang and a crash. Raising on every device avoids that wait, but which devices run
a program is known only when it is lowered, not when it is traced. So the callback is a primitive whose
lowering reads the program's devices and runs the `jax.pure_callback` in a `shard_map` over them, once
per device (one device: one plain callback; inside a `shard_map` the plain callback already runs once
per device). In a multi-process program that is every device of every process, so every process raises
the same error.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import Primitive
from jax.interpreters import mlir
from jax.sharding import PartitionSpec

_TOKEN = jax.ShapeDtypeStruct((), jnp.int32)

every_device_p = Primitive("sciml_every_device_callback")


def on_every_device(host_fn: Callable, *operands) -> jax.Array:
    """Call ``host_fn(*operands)`` (NumPy values; it may raise) on every device running the program;
    a zero int32 token to add to the values the check guards, so that it is not optimised away.

    ``operands``: unbatched arrays, replicated (a summary of a reduction). Outside `jit` it is called
    once, right away.
    """
    return every_device_p.bind(*operands, host_fn=host_fn)


def _token_of(host_fn):
    def call(*operands):
        host_fn(*operands)
        return np.int32(0)
    return call


def _impl(*operands, host_fn):
    host_fn(*(np.asarray(x) for x in operands))
    return jnp.int32(0)


def _device_count(ctx) -> int:
    """The devices of the program being lowered, where it is automatically partitioned (1 inside
    `shard_map`, whose callbacks run per device already)."""
    context = ctx.module_context.axis_context
    if hasattr(context, "manual_axes"):
        return 1
    return int(getattr(context, "num_devices", 1) or 1)


def _lowering(ctx, *operands, host_fn):
    call, count = _token_of(host_fn), _device_count(ctx)

    def body(*values):
        if count == 1:
            return jax.pure_callback(call, _TOKEN, *values)
        # One callback per device at the same point of every device's program (a `shard_map` region over
        # the program's devices, the replicated operands as they are): no device waits on another before
        # its callback, so where one raises, all do. Only then are the tokens summed. (The mesh is
        # abstract: a nested function is lowered knowing how many devices run it, not which.)
        mesh = jax.sharding.AbstractMesh((count,), ("sciml_device",))
        per_device = jax.shard_map(lambda *v: jnp.reshape(jax.pure_callback(call, _TOKEN, *v), (1,)), mesh=mesh,
                                   in_specs=tuple(PartitionSpec() for _ in values),
                                   out_specs=PartitionSpec("sciml_device"), check_vma=False)
        return jnp.sum(per_device(*values), dtype=jnp.int32)   # the declared token (int64 under x64)

    return mlir.lower_fun(body, multiple_results=False)(ctx, *operands)


every_device_p.def_impl(_impl)
every_device_p.def_abstract_eval(lambda *operands, host_fn: jax.core.ShapedArray((), jnp.int32))
mlir.register_lowering(every_device_p, _lowering)
