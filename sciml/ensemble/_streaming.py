"""Streaming ensembles: ``solve_ensemble(..., batch_size=k, output=..., reduce=...)`` solves ``k``
trajectories at a time (``k`` per device when ``backend="jax"`` shards over a mesh) and folds each chunk
into a running result, so the memory of a run is one chunk's, whatever the number of trajectories.

Every chunk has the same shape (the last is padded with copies of the last trajectory, which are masked
out of every reduction and dropped from every concatenation), so each program compiles once: the solve
of a chunk (``backend="jax"``: the ensemble's own vmapped, sharded program; ``"c"``/``"cupy"``: the
kernel) and the jitted fold of ``output`` and ``reduce`` over it. The two are separate so that a new
reduction does not recompile the solver; with ``backend="jax"`` a chunk's saved states stay on the
device between them.

A chunk's inputs come from a source: `GivenInputs` slices the ``y0s``/``args`` arrays, `GeneratedInputs`
(``inputs=``, `_generated_inputs.py`) makes them from the chunk's indices; the runners take either.

Statuses are tallied over every chunk (`StreamedEnsemble.status_counts`); ``throw=True`` stops at the
first chunk with a failure and raises naming the trajectory's index.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from sciml import _validate as V
from sciml._problem import Options, Problem
from sciml.ensemble._reductions import Reduction, count_dtype
from sciml.ensemble._solution import EnsembleSolution
from sciml.ensemble._streamed_result import StreamedEnsemble, nonzero_counts
from sciml.solvers._status import SolveError, Status, describe


def check_streaming(batch_size, output, reduce, progress) -> None:
    """The checks of the streaming arguments of `solve_ensemble` (before anything is traced)."""
    if batch_size is None:
        given = [name for name, v in (("output", output), ("reduce", reduce)) if v is not None]
        given += ["progress"] if progress else []
        if given:
            raise ValueError(f"`{'`, `'.join(given)}` stream the ensemble in chunks: pass `batch_size=` (the "
                             f"trajectories solved at a time, e.g. `batch_size=100_000`).")
        return
    V._check_count(batch_size, "batch_size", "100_000")
    if output is not None and not callable(output):
        raise TypeError(f"`output` must be a function of a chunk's `EnsembleSolution` (e.g. `lambda ens: "
                        f"ens.ys[:, -1]`); got {type(output).__name__}.")
    if reduce is not None and not isinstance(reduce, Reduction):
        raise TypeError(f"`reduce` must be a reduction such as `sciml.ensemble.MeanVar()` or "
                        f"`sciml.ensemble.Fold(initial, update)`; got {reduce!r} ({type(reduce).__name__}).")


def solve_streaming(source, options: Options, *, backend: str, mesh, batch_size: int,
                    output: Callable | None, reduce: Reduction | None, throw: bool, progress: bool):
    """Solve the chunks of ``source`` (`GivenInputs`, or `GeneratedInputs` of ``inputs=``) one by one; a
    `StreamedEnsemble`, or with neither ``output`` nor ``reduce`` the whole `EnsembleSolution` in host
    memory (NumPy arrays)."""
    traced = [x for x in jax.tree_util.tree_leaves(source.problem) if isinstance(x, jax.core.Tracer)]
    if traced:
        raise TypeError("`batch_size=` streams the ensemble in a Python loop over chunks, so it cannot run inside "
                        "`jax.jit`, `jax.grad` or `jax.vmap`; call it outside the transform, or drop `batch_size`.")
    n = source.n
    runner = (_JaxChunks if backend == "jax" else _KernelChunks)(source, options, backend, mesh, batch_size)
    whole = output is None and reduce is None
    output = _whole if whole else _saved_states if output is None else output
    fold = _compiled_fold(output, reduce)
    values = jax.eval_shape(output, runner.structure)
    _check_output(values, runner.lanes)
    ens_struct = runner.structure
    state = (_initial(reduce, values), _STATUS.init((ens_struct.status, None, ens_struct.t_final, ens_struct._last_dt)))
    gathered = None if reduce is not None else jax.tree_util.tree_map(
        lambda v: np.empty((n,) + tuple(v.shape[1:]), v.dtype), values)
    bar = _progress_bar(n) if progress else None
    # (state, outputs, start) of the chunk dispatched last: the next chunk is dispatched before waiting
    # for it, so at most two chunks are alive (async dispatch would otherwise queue them all)
    pending = None
    try:
        for start in range(0, n, runner.lanes):
            state, chunk = fold(state, runner.chunk(start), start, n)
            if pending is not None:
                _finish_chunk(pending, gathered, n, runner.lanes, throw, bar, options)
            pending = (state, chunk, start)
        _finish_chunk(pending, gathered, n, runner.lanes, throw, bar, options)
    finally:
        if bar is not None:
            bar.close()
    user_state, status_state = state
    counts, first, message = _status_summary(status_state, n, options)
    if whole:
        return gathered  # the EnsembleSolution, in host memory
    value = reduce.finish(user_state) if reduce is not None else gathered
    return StreamedEnsemble(value=value, status_counts=counts, n_trajectories=n, first_failure=first,
                            failure_message=message)


def _whole(ens):
    return ens


def _saved_states(ens):
    """The default ``output`` of a reduction: the saved states."""
    return ens.ys


def _initial(reduce: Reduction | None, values):
    """``reduce``'s first state, checked to keep its shapes and dtypes through an update."""
    if reduce is None:
        return None
    state = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype=jnp.asarray(x).dtype), reduce.init(values))
    valid = jax.ShapeDtypeStruct(jax.tree_util.tree_leaves(values)[0].shape[:1], jnp.bool_)
    after = jax.eval_shape(reduce.update, state, values, valid)

    def describe_tree(tree):
        leaves, treedef = jax.tree_util.tree_flatten(tree)
        return treedef, [(tuple(x.shape), np.dtype(x.dtype).name) for x in leaves]

    if describe_tree(after) != describe_tree(state):
        raise ValueError(f"`reduce`'s update must keep its state's structure, shapes and dtypes from chunk to chunk "
                         f"(every chunk has `batch_size` trajectories); it turned {describe_tree(state)} into "
                         f"{describe_tree(after)}. Make `init` return the state `update` returns.")
    return state


def _check_output(values, lanes: int) -> None:
    leaves = jax.tree_util.tree_leaves(values)
    shapes = [tuple(x.shape) for x in leaves]
    if not leaves or any(s[:1] != (lanes,) for s in shapes):
        raise ValueError(f"`output` must return arrays with the chunk's trajectories on the leading axis (here "
                         f"{lanes}); got shapes {shapes}. Write it for a chunk's `EnsembleSolution` (e.g. "
                         f"`lambda ens: ens.ys[:, -1]`), or wrap a function of one trajectory in `jax.vmap`.")


def _chunk_indices(start: int, lanes: int, n: int) -> np.ndarray:
    """The trajectories of the chunk at ``start``; past ``n``, the last trajectory again (padding)."""
    return np.minimum(np.arange(start, start + lanes), n - 1)


def _take(x, start: int, lanes: int, n: int):
    """The chunk of ``x`` (trajectories on the leading axis): a view for NumPy when no padding is needed,
    one gather compiled once for JAX arrays."""
    if isinstance(x, np.ndarray) and start + lanes <= n:
        return x[start:start + lanes]
    index = _chunk_indices(start, lanes, n)
    if isinstance(x, jax.Array):
        return jnp.take(x, jnp.asarray(index), axis=0)
    if hasattr(x, "__cuda_array_interface__"):
        import cupy
        return x[cupy.asarray(index)]
    return np.asarray(x)[index]


class GivenInputs:
    """The chunks of an ensemble given as arrays (``y0s``, ``args``): slices of its `Problem`."""

    generated = False

    def __init__(self, problem: Problem, options: Options):
        self.problem, self.options, self.n = problem, options, problem.n_traj

    def chunk(self, start: int, lanes: int) -> Problem:
        """The sub-ensemble of ``lanes`` trajectories from ``start`` (padded past the last)."""
        take = functools.partial(_take, start=start, lanes=lanes, n=self.n)
        return dataclasses.replace(self.problem, y0=jax.tree_util.tree_map(take, self.problem.y0),
                                   args=[take(x) if b else x for x, b in zip(self.problem.args, self.options.batched)])


def stream_mesh(mesh):
    """The mesh ``backend="jax"`` streams over: ``mesh`` (default: every device), None for one device."""
    from sciml.ensemble._jax_backend import default_mesh

    mesh = default_mesh() if mesh is None else mesh
    return None if mesh is None or mesh.devices.size == 1 else mesh


def chunk_lanes(n: int, batch_size: int, devices: int) -> int:
    """Trajectories in each chunk: ``batch_size`` per device, fewer when ``n`` needs fewer."""
    return min(batch_size, -(-n // devices)) * devices


class _JaxChunks:
    """``backend="jax"``: each chunk is a call of the ensemble's own compiled program (vmapped, and sharded
    over the mesh with ``batch_size`` trajectories per device)."""

    def __init__(self, source, options, backend, mesh, batch_size):
        from sciml.ensemble._jax_backend import _compiled, _place
        from jax.sharding import NamedSharding, PartitionSpec

        self.mesh = stream_mesh(mesh)
        devices = 1 if self.mesh is None else self.mesh.devices.size
        self.lanes = chunk_lanes(source.n, batch_size, devices)
        self.source, self.options, problem = source, options, source.problem
        self.solve = _compiled(options, self.mesh)
        shared = [x for x, b in zip(problem.args, options.batched) if not b]
        values = (problem.t0, problem.t1, problem.ts, problem.rtol, problem.atol, problem.dt0)
        self.place = self.place_shared = lambda tree: tree
        if self.mesh is not None:
            split = NamedSharding(self.mesh, PartitionSpec(self.mesh.axis_names))
            whole = NamedSharding(self.mesh, PartitionSpec())
            self.place_shared = lambda tree: jax.tree_util.tree_map(lambda x: _place(x, whole), tree)
            shared, values = self.place_shared(shared), self.place_shared(values)
            self.place = lambda tree: jax.tree_util.tree_map(lambda x: _place(x, split), tree)
        self.fixed = (shared, values)
        self.structure = jax.eval_shape(self._solve, *self._inputs(0))

    def _inputs(self, start):
        chunk = self.source.chunk(start, self.lanes)
        batched = [x for x, b in zip(chunk.args, self.options.batched) if b]
        shared, values = self.fixed
        if self.source.generated:  # each chunk's own shared arguments (of the same shapes and dtypes)
            shared = self.place_shared([x for x, b in zip(chunk.args, self.options.batched) if not b])
        return self.place(chunk.y0), self.place(batched), shared, values

    def chunk(self, start):
        return self._solve(*self._inputs(start))

    def _solve(self, y0s, batched, shared, values):
        ts, ys, t_final, y_final, status, stats, last_dt = self.solve(y0s, batched, shared, values)
        return EnsembleSolution(ts=ts, ys=ys, t_final=t_final, y_final=y_final, status=status, stats=stats,
                                _last_dt=last_dt, backend="jax", _max_steps=self.options.max_steps)


class _KernelChunks:
    """``backend="c"``/``"cupy"``: the kernel solves a chunk; the jitted fold reduces it. In a
    multi-process program (``backend="c"``) a chunk has ``batch_size`` trajectories per device and each
    process solves the rows of its devices."""

    def __init__(self, source, options, backend, mesh, batch_size):
        from sciml.ensemble._multiprocess import is_multiprocess

        self.source, self.options, self.backend = source, options, backend
        self.split = backend == "c" and is_multiprocess()
        devices = jax.device_count() if self.split else 1
        self.lanes = chunk_lanes(source.n, batch_size, devices)
        self._first = self._solve_chunk(0)
        self.structure = jax.eval_shape(lambda e: e, self._first)

    def _solve_chunk(self, start):
        from sciml.kernel import solve_c, solve_cupy

        chunk = self.source.chunk(start, self.lanes)
        if self.split:
            from sciml.ensemble._multiprocess import solve_c_global
            return solve_c_global(chunk, self.options)
        fields = (solve_c if self.backend == "c" else solve_cupy)(chunk, self.options)
        return jax.tree_util.tree_map(_as_jax, EnsembleSolution(**fields, backend=self.backend))

    def chunk(self, start):
        ens = self._first if start == 0 else self._solve_chunk(start)
        self._first = None
        return ens


def _as_jax(x):
    """A chunk's field as a JAX array (CuPy results stay on the GPU through DLPack when JAX has one)."""
    if hasattr(x, "__cuda_array_interface__"):
        if any(d.platform == "gpu" for d in jax.devices()):
            return jax.dlpack.from_dlpack(x)
        return jnp.asarray(x.get())
    return x


class _StatusTally(Reduction):
    """Counts of every `Status` code over the real trajectories, and the first failure (index, status,
    time and last step, for its message). Folded with ``valid`` = not padding."""

    def init(self, values):
        status, _, t_final, last_dt = values
        never = jnp.asarray(np.iinfo(count_dtype()).max, count_dtype())  # no failure yet
        return dict(counts=jnp.zeros(len(Status), count_dtype()), first=never,
                    first_status=jnp.zeros((), status.dtype), first_t=jnp.zeros((), t_final.dtype),
                    first_dt=jnp.zeros((), last_dt.dtype))

    def update(self, state, values, valid):
        status, index, t_final, last_dt = values
        codes = jnp.arange(len(Status), dtype=status.dtype)
        counts = state["counts"] + jnp.sum((status[:, None] == codes) & valid[:, None], axis=0, dtype=count_dtype())
        failed = valid & (status != Status.SUCCESS) & (status != Status.EVENT)
        candidates = jnp.where(failed, index, state["first"])
        k = jnp.argmin(candidates)
        earlier = candidates[k] < state["first"]

        def pick(old, new):
            return jnp.where(earlier, new, old).astype(old.dtype)

        return dict(counts=counts, first=pick(state["first"], candidates[k]),
                    first_status=pick(state["first_status"], status[k]),
                    first_t=pick(state["first_t"], t_final[k]), first_dt=pick(state["first_dt"], last_dt[k]))


_STATUS = _StatusTally()


def _fold_chunk(output, reduce, state, ens, start, n):
    """One chunk folded into ``state = (reduce's state, the status tally)``; also the chunk's outputs
    when there is no reduction (to be copied to the host)."""
    user_state, status_state = state
    lanes = ens.status.shape[0]
    index = jnp.asarray(start, count_dtype()) + jnp.arange(lanes, dtype=count_dtype())
    real = index < n
    status_state = _STATUS.update(status_state, (ens.status, index, ens.t_final, ens._last_dt), real)
    values = output(ens)
    if reduce is None:
        return (None, status_state), values
    new = reduce.update(user_state, values, real & ens.success)
    # the same dtypes as the checked initial state, never weakly typed (one compile for every chunk)
    new = jax.tree_util.tree_map(lambda s, old: jax.lax.convert_element_type(s, old.dtype), new, user_state)
    return (new, status_state), None


def _compiled_fold(output, reduce):
    try:
        return _compiled_fold_cached(output, reduce)
    except TypeError:  # an unhashable output or reduction: compile for this call only
        return jax.jit(functools.partial(_fold_chunk, output, reduce))


@functools.lru_cache(maxsize=32)
def _compiled_fold_cached(output, reduce):
    return jax.jit(functools.partial(_fold_chunk, output, reduce))


def _finish_chunk(pending, gathered, n, lanes, throw, bar, options):
    """Wait for a chunk, copy its outputs to the host, update the bar, and raise on failure if ``throw``."""
    state, chunk, start = pending
    jax.block_until_ready(state)
    count = min(lanes, n - start)
    if gathered is not None:
        jax.tree_util.tree_map(lambda out, c: out.__setitem__(slice(start, start + count), _to_host(c)[:count]),
                               gathered, chunk)
    if bar is not None:
        bar.update(count)
    if throw:
        counts, first, message = _status_summary(state[1], n, options)
        if first is not None:
            raise SolveError(f"trajectory {first} of {n} failed (the streamed solve stopped after trajectories "
                             f"0..{start + count - 1}; {nonzero_counts(counts)} so far): {message}")


def _to_host(x) -> np.ndarray:
    """A chunk's values in host memory (gathered from every process when split over processes)."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        from sciml.distributed import to_host
        return to_host(x)
    return np.asarray(x)


def _status_summary(status_state, n, options) -> tuple[dict, int | None, str | None]:
    host = jax.device_get(status_state)
    counts = {s.name: int(host["counts"][s]) for s in Status}
    first = int(host["first"])
    if first >= n:
        return counts, None, None
    message = describe(int(host["first_status"]), float(host["first_t"]), abs(float(host["first_dt"])),
                       options.max_steps, time_dtype=np.dtype(host["first_t"].dtype).name)
    return counts, first, message[0].upper() + message[1:]


def _progress_bar(n: int):
    from tqdm.auto import tqdm
    return tqdm(total=n, unit="traj", desc="solve_ensemble", dynamic_ncols=True)
