"""``backend="jax"``: `sciml.solve` vmapped over the trajectories, sharded over the devices of a mesh.

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
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from sciml._solve import solve
from sciml.ensemble._problem import EnsembleProblem
from sciml.ensemble._solution import EnsembleSolution


@dataclasses.dataclass(frozen=True)
class _Static:
    """The options that select one compiled ensemble program."""

    f: Callable
    args_treedef: Any
    batched: tuple
    dynamic: tuple
    static_leaves: tuple
    solver: Any
    max_steps: int
    adaptive: bool
    max_step: float | None
    auto_dt0: bool
    mesh: Mesh | None


def default_mesh() -> Mesh | None:
    """A one-axis mesh of every device (of every process), or None with a single device."""
    devices = jax.devices()
    return Mesh(np.array(devices), ("trajectories",)) if len(devices) > 1 else None


def solve_jax(problem: EnsembleProblem, mesh: Mesh | None) -> EnsembleSolution:
    mesh = default_mesh() if mesh is None else mesh
    if mesh is not None and mesh.devices.size == 1:
        mesh = None
    static = _Static(
        f=problem.f, args_treedef=problem.args_treedef, batched=problem.batched, dynamic=problem.dynamic,
        static_leaves=tuple(x for x, d in zip(problem.arg_leaves, problem.dynamic) if not d),
        solver=problem.solver, max_steps=problem.max_steps, adaptive=problem.adaptive,
        max_step=None if problem.max_step is None else float(problem.max_step),
        auto_dt0=problem.dt0 is None, mesh=mesh)
    batched = [x for x, b, d in zip(problem.arg_leaves, problem.batched, problem.dynamic) if d and b]
    shared = [x for x, b, d in zip(problem.arg_leaves, problem.batched, problem.dynamic) if d and not b]
    y0s, n = problem.y0s, problem.n_traj
    options = (problem.t0, problem.t1, problem.ts, problem.rtol, problem.atol, problem.dt0)
    if mesh is not None:
        pad = -n % mesh.devices.size
        y0s, batched = (jax.tree_util.tree_map(lambda x: _pad(x, pad), t) for t in (y0s, batched))
        spec = PartitionSpec(mesh.axis_names)
        y0s, batched = (jax.tree_util.tree_map(lambda x: _place(x, NamedSharding(mesh, spec)), t)
                        for t in (y0s, batched))
        shared, options = (jax.tree_util.tree_map(lambda x: _place(x, NamedSharding(mesh, PartitionSpec())), t)
                           for t in (shared, options))
    out = _compiled(static)(y0s, batched, shared, options)
    if mesh is not None:
        out = jax.tree_util.tree_map(lambda x: x[:n], out)
    ts, ys, t_final, y_final, status, stats, last_dt = out
    return EnsembleSolution(ts=ts, ys=ys, t_final=t_final, y_final=y_final, status=status, stats=stats,
                            _last_dt=last_dt, backend="jax", _max_steps=problem.max_steps)


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
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def _compiled(static: _Static):
    try:
        return _compiled_cached(static)
    except TypeError:  # an unhashable f or static arg: compile for this call only
        return _make(static)


@functools.lru_cache(maxsize=64)
def _compiled_cached(static: _Static):
    return _make(static)


def _make(static: _Static):
    def one(y0, batched, shared, options):
        t0, t1, ts, rtol, atol, dt0 = options
        it_b, it_s, it_static = iter(batched), iter(shared), iter(static.static_leaves)
        leaves = [(next(it_b) if b else next(it_s)) if d else next(it_static)
                  for b, d in zip(static.batched, static.dynamic)]
        args = jax.tree_util.tree_unflatten(static.args_treedef, leaves)
        sol = solve(static.f, y0, (t0, t1), args=args, solver=static.solver, saveat=ts, rtol=rtol, atol=atol,
                     dt0=None if static.auto_dt0 else dt0, max_steps=static.max_steps, adaptive=static.adaptive,
                     max_step=static.max_step, throw=False, backend="jax")  # the C kernel is backend="c"
        return sol.ts, sol.ys, sol.t_final, sol.y_final, sol.status, sol.stats, sol._last_dt

    run = jax.vmap(one, in_axes=(0, 0, None, None))
    if static.mesh is not None:
        spec = PartitionSpec(static.mesh.axis_names)
        run = jax.shard_map(run, mesh=static.mesh, in_specs=(spec, spec, PartitionSpec(), PartitionSpec()),
                            out_specs=spec, check_vma=False)
    return jax.jit(run)

