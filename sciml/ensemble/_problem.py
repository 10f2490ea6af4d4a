"""Validation of an ensemble problem and its split into batched and shared inputs, for every backend."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import numpy as np

from sciml._config import check_precision
from sciml._solve_checks import _check_concrete_values, _saveat_mode

_ARRAY_TYPES = (np.ndarray, np.generic, bool, int, float, complex)


def _is_array(x) -> bool:
    return isinstance(x, (jax.Array,) + _ARRAY_TYPES) or hasattr(x, "__cuda_array_interface__")


@dataclasses.dataclass(frozen=True, eq=False)
class EnsembleProblem:
    """An ensemble in a form every backend reads.

    ``y0s`` leaves and batched ``args`` leaves carry the trajectory axis first; ``arg_leaves`` are all
    leaves of ``args`` with ``batched[k]`` saying which, and ``dynamic[k]`` whether the leaf is an
    array (traced) or another object (a layer, a callable: fixed when the problem is compiled).
    """

    f: Callable
    y0s: Any
    n_traj: int
    t0: Any
    t1: Any
    ts: Any                   # None (final state only) or the shared save times
    args_treedef: Any
    arg_leaves: tuple
    batched: tuple[bool, ...]
    dynamic: tuple[bool, ...]
    solver: Any
    rtol: Any
    atol: Any
    dt0: Any
    max_steps: int
    adaptive: bool
    max_step: Any

    def rebuild_args(self, dynamic_leaves) -> Any:
        """``args`` with its array leaves replaced by ``dynamic_leaves`` (in leaf order)."""
        it = iter(dynamic_leaves)
        leaves = [next(it) if d else x for x, d in zip(self.arg_leaves, self.dynamic)]
        return jax.tree_util.tree_unflatten(self.args_treedef, leaves)


def prepare(f, y0s, t_span, args, args_axes, solver, saveat, rtol, atol, dt0, max_steps, adaptive,
            max_step) -> EnsembleProblem:
    """Check the arguments of `solve_ensemble` and describe the problem for the backends."""
    if not callable(f):
        raise TypeError(f"`f` must be a callable f(t, y, args); got {type(f).__name__}.")
    check_precision(y0s, "y0s")
    check_precision(args, "args")
    leaves = jax.tree_util.tree_leaves(y0s)
    if not leaves:
        raise ValueError("`y0s` has no arrays; pass the initial states as an array of shape "
                         "(n_trajectories, ...) or a pytree of such arrays.")
    shapes = [tuple(getattr(x, "shape", ())) for x in leaves]
    if any(len(s) == 0 for s in shapes):
        raise ValueError(f"every leaf of `y0s` needs a leading trajectory axis; got shapes {shapes}. "
                         f"For one trajectory use `sciml.solve`, or pass `y0[None]`.")
    n_traj = shapes[0][0]
    if any(s[0] != n_traj for s in shapes):
        raise ValueError(f"the leaves of `y0s` disagree on the number of trajectories (their leading "
                         f"axis); got shapes {shapes}.")
    if not (isinstance(t_span, (tuple, list)) and len(t_span) == 2):
        raise ValueError(f"`t_span` must be a pair (t0, t1) shared by all trajectories; got {t_span!r}.")
    if isinstance(saveat, str):
        raise ValueError(f"`saveat` for an ensemble must be None (final states) or an array of times "
                         f"shared by all trajectories; got {saveat!r}. For every step of one trajectory "
                         f"use `sciml.solve(..., saveat=\"steps\")`.")
    _, ts = _saveat_mode(saveat)
    _check_concrete_values(t_span[0], t_span[1], {}, ts, rtol, atol)
    if not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise ValueError(f"`max_steps` must be a positive int; got {max_steps!r}.")
    if not adaptive and dt0 is None:
        raise ValueError("`adaptive=False` takes fixed steps of `dt0`: pass `dt0=`.")
    if adaptive and not solver.adaptive:
        raise ValueError(f"`{solver!r}` has no error estimate, so it cannot adapt its step: pass "
                         f"`adaptive=False, dt0=...`, or use an adaptive method such as `sciml.solvers.Tsit5()`.")
    arg_leaves, treedef = jax.tree_util.tree_flatten(args)
    axes = _axes_per_leaf(args_axes, args)
    dynamic = tuple(_is_array(x) for x in arg_leaves)
    batched = []
    for (path, leaf), axis, dyn in zip(jax.tree_util.tree_leaves_with_path(args), axes, dynamic):
        if axis not in (0, None):
            raise ValueError(f"`args_axes` entries must be 0 (batched along the leading axis) or None "
                             f"(shared); got {axis!r}.")
        where = "args" + jax.tree_util.keystr(path)
        if axis == 0 and dyn:
            shape = tuple(getattr(leaf, "shape", ()))
            if not shape or shape[0] != n_traj:
                raise ValueError(
                    f"`{where}` has shape {shape}, but `args_axes` marks it batched, so its leading axis "
                    f"must have one entry per trajectory ({n_traj}). Pass `args_axes=None` for arguments "
                    f"shared by all trajectories, or a pytree like `args` with 0 (batched) / None (shared) "
                    f"per entry, e.g. `args=(rhos, weights), args_axes=(0, None)`.")
        batched.append(axis == 0 and dyn)
    return EnsembleProblem(
        f=f, y0s=y0s, n_traj=int(n_traj), t0=t_span[0], t1=t_span[1], ts=ts, args_treedef=treedef,
        arg_leaves=tuple(arg_leaves), batched=tuple(batched), dynamic=dynamic, solver=solver, rtol=rtol,
        atol=atol, dt0=dt0, max_steps=int(max_steps), adaptive=bool(adaptive), max_step=max_step)


def _axes_per_leaf(args_axes, args) -> list:
    """``args_axes`` (a prefix of ``args`` with 0/None entries) broadcast to one entry per leaf."""
    out: list = []

    def expand(axis, subtree):
        out.extend([axis] * len(jax.tree_util.tree_leaves(subtree)))

    try:
        jax.tree_util.tree_map(expand, args_axes, args, is_leaf=lambda x: x is None)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"`args_axes` must be 0, None, or a pytree prefix of `args` with 0/None entries (like "
            f"`jax.vmap`'s `in_axes`); got {args_axes!r} for `args` of structure "
            f"{jax.tree_util.tree_structure(args)}.") from err
    return out
