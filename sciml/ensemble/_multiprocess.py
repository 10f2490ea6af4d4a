"""``backend="c"`` in a multi-process program: each process runs its share of the trajectories through the
kernel on its own cores, and the result is one global array split over the processes like
``backend="jax"``'s.

Every process holds the whole ensemble's inputs (as for ``backend="jax"``). The batch is padded with
copies of the last trajectory to a multiple of the global device count and laid out over the same
one-axis mesh of every device that ``backend="jax"`` uses, so the two backends return arrays with the
same sharding; a process solves exactly the rows its devices hold, and nothing crosses the network until
the caller asks for values (``sciml.distributed.to_host``, or the statuses for ``message()``).
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from sciml._problem import Options, Problem
from sciml.ensemble._jax_backend import _pad, default_mesh
from sciml.ensemble._solution import EnsembleSolution


def is_multiprocess() -> bool:
    from sciml.distributed import require_initialized

    require_initialized("`solve_ensemble(backend=\"c\")`")
    return jax.process_count() > 1


def solve_c_global(problem: Problem, options: Options) -> EnsembleSolution:
    """The ensemble solved by the C kernel, each process solving its own rows; fields are global arrays."""
    from sciml.kernel import solve_c

    mesh = default_mesh()
    n = problem.n_traj
    total = n + (-n % mesh.devices.size)
    sharding = NamedSharding(mesh, PartitionSpec(mesh.axis_names))
    lo, hi = _local_rows(sharding, total)

    def mine(x):
        x = _pad(_whole(x), total - n)
        return x[lo:hi]

    local = dataclasses.replace(problem, y0=jax.tree_util.tree_map(mine, problem.y0),
                                args=[mine(x) if b else x for x, b in zip(problem.args, options.batched)])
    fields = solve_c(local, options)
    max_steps = fields.pop("_max_steps")

    def to_global(x):
        x = np.asarray(x)
        whole = jax.make_array_from_process_local_data(sharding, x, (total,) + x.shape[1:])
        return whole[:n]

    fields = jax.tree_util.tree_map(to_global, fields)
    return EnsembleSolution(**fields, _max_steps=max_steps, backend="c")


def _local_rows(sharding: NamedSharding, total: int) -> tuple[int, int]:
    """The one contiguous block of rows ``[lo, hi)`` that this process's devices hold."""
    rows = sorted((index[0].start or 0, total if index[0].stop is None else index[0].stop)
                  for index in sharding.addressable_devices_indices_map((total,)).values())
    lo, hi = rows[0][0], rows[-1][1]
    if any(a[1] != b[0] for a, b in zip(rows, rows[1:])):
        raise AssertionError(f"this process's rows are not contiguous: {rows}")
    return lo, hi


def _whole(x):
    """``x`` with every trajectory, also when the caller passed a global array split over processes."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        from sciml.distributed import to_host

        return to_host(x)
    return x
