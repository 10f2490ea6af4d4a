"""``backend="jax"``: the pipeline's `integrate` vmapped over the trajectories, sharded over the devices of a mesh.

Each trajectory keeps its own step size (the vmapped loop masks finished and rejected trajectories).
With more than one device the batch is split along a `jax.sharding.Mesh` and every device runs its own
loop on its shard under `jax.shard_map`, with no communication, so a device never waits for another's
slowest trajectory. The batch is padded to a multiple of the device count with copies of the last
trajectory and the padding is dropped from the result. Under `jax.distributed` the mesh spans the
devices of every process and the same code runs on each.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from sciml._integrate import integrate
from sciml._problem import Options, Problem
from sciml.ensemble._solution import EnsembleSolution


def default_mesh() -> Mesh | None:
    """A one-axis mesh of every device (of every process), or None with a single device."""
    devices = jax.devices()
    return Mesh(np.array(devices), ("trajectories",)) if len(devices) > 1 else None


def solve_jax(problem: Problem, options: Options, mesh: Mesh | None) -> EnsembleSolution:
    """Solve every trajectory of ``problem`` with the pipeline's `integrate`, vmapped (and sharded)."""
    mesh = default_mesh() if mesh is None else mesh
    if mesh is not None and mesh.devices.size == 1:
        mesh = None
    batched = [x for x, b in zip(problem.args, options.batched) if b]
    shared = [x for x, b in zip(problem.args, options.batched) if not b]
    y0s, n = problem.y0, problem.n_traj
    values = (problem.t0, problem.t1, problem.ts, problem.rtol, problem.atol, problem.dt0)
    if mesh is not None:
        pad = -n % mesh.devices.size
        y0s, batched = (jax.tree_util.tree_map(lambda x: _pad(x, pad), t) for t in (y0s, batched))
        spec = PartitionSpec(mesh.axis_names)
        y0s, batched = (jax.tree_util.tree_map(lambda x: _place(x, NamedSharding(mesh, spec)), t)
                        for t in (y0s, batched))
        shared, values = (jax.tree_util.tree_map(lambda x: _place(x, NamedSharding(mesh, PartitionSpec())), t)
                          for t in (shared, values))
    out = _compiled(options, mesh)(y0s, batched, shared, values)
    if mesh is not None:
        out = jax.tree_util.tree_map(lambda x: x[:n], out)
    ts, ys, t_final, y_final, status, stats, last_dt = out
    return EnsembleSolution(ts=ts, ys=ys, t_final=t_final, y_final=y_final, status=status, stats=stats,
                            _last_dt=last_dt, backend="jax", _max_steps=options.max_steps)


def _pad(x, pad: int):
    """``x`` with its last trajectory repeated ``pad`` more times (a valid problem, unlike zeros)."""
    if pad == 0:
        return x
    xp = jnp if isinstance(x, jax.Array) else np
    x = xp.asarray(x)
    return xp.concatenate([x, xp.repeat(x[-1:], pad, axis=0)], axis=0)


def _place(x, sharding: NamedSharding):
    """``x`` as a global array laid out by ``sharding`` (each process supplies its own shards)."""
    if isinstance(x, (bool, int, float)) or (isinstance(x, jax.Array) and x.sharding == sharding):
        return x  # Python numbers stay weakly typed, as in `sciml.solve`
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return jax.device_put(x, sharding)  # a global array, each process holding a part: laid out anew
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def _compiled(options: Options, mesh: Mesh | None):
    try:
        return _compiled_cached(options, mesh)
    except TypeError:  # an unhashable f or static arg: compile for this call only
        return _make(options, mesh)


@functools.lru_cache(maxsize=64)
def _compiled_cached(options: Options, mesh: Mesh | None):
    return _make(options, mesh)


def _make(options: Options, mesh: Mesh | None):
    single = dataclasses.replace(options, batched=None, backend="jax")  # the C kernel is backend="c"

    def one(y0, batched, shared, values):
        t0, t1, ts, rtol, atol, dt0 = values
        it_b, it_s = iter(batched), iter(shared)
        args = [next(it_b) if b else next(it_s) for b in options.batched]
        sol = integrate(single, Problem(y0=y0, t0=t0, t1=t1, args=args, ts=ts, rtol=rtol, atol=atol, dt0=dt0))
        return sol.ts, sol.ys, sol.t_final, sol.y_final, sol.status, sol.stats, sol._last_dt

    run = jax.vmap(one, in_axes=(0, 0, None, None))
    if mesh is not None:
        spec = PartitionSpec(mesh.axis_names)
        run = jax.shard_map(run, mesh=mesh, in_specs=(spec, spec, PartitionSpec(), PartitionSpec()),
                            out_specs=spec, check_vma=False)
    return jax.jit(run)
