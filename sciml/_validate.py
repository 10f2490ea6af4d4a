"""The one validator of the solve pipeline: every front door's arguments are checked here, outside
``jit`` where values are concrete, and in the traced program where only shapes and dtypes are known.

Each error names the argument as the front door calls it (`Names`: ``saveat`` for `sciml.solve`,
``t_eval`` for `sciml.solve_ivp`, ``y0s`` for `sciml.solve_ensemble`), what was received and the fix.
Traced values cannot be checked here; `saveat_status` checks save times inside the program instead.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from sciml._config import check_precision
from sciml.solvers._events import Event

#: the `saveat` modes that record every step
SAVEAT_MODES = ("dense", "steps")
#: the state dtypes the solvers integrate in
STATE_DTYPES = tuple(np.dtype(d) for d in (np.float32, np.float64, np.complex64, np.complex128))


@dataclasses.dataclass(frozen=True)
class Names:
    """How a front door spells its arguments in messages."""

    y0: str = "y0"
    saveat: str = "saveat"
    dt0: str = "dt0"
    max_step: str = "max_step"
    atol_example: str = "1e-6"


SOLVE = Names()


def check_static(f, y0, t_span, args, saveat, solver, adjoint, controller, max_steps, adaptive, dt0, events,
                 max_step, event_records, backend, names: Names = SOLVE, ensemble: bool = False):
    """Checks that need no tracing: types, precision, static options."""
    from sciml.adjoints._base import AbstractAdjoint
    from sciml.solvers._base import AbstractSolver

    check_precision(y0, names.y0)
    check_precision(args, "args")
    check_precision(t_span, "t_span")
    if isinstance(saveat, (np.ndarray, np.generic)):
        check_precision(saveat, names.saveat)
    if not callable(f):
        raise TypeError(f"`f` must be a callable f(t, y, args); got {type(f).__name__}.")
    _check_instance(solver, AbstractSolver, "solver", "sciml.solvers.Tsit5()")
    _check_instance(adjoint, AbstractAdjoint, "adjoint", "sciml.adjoints.Auto()")
    if not (hasattr(controller, "init") and hasattr(controller, "adapt") and hasattr(controller, "dtmax")):
        raise TypeError(f"`controller` must be a step-size controller such as `sciml.solvers.PIController()`; got "
                        f"{controller!r}.")
    if not (isinstance(t_span, (tuple, list)) and len(t_span) == 2) and not (
            hasattr(t_span, "shape") and tuple(t_span.shape) == (2,)):
        raise ValueError(f"`t_span` must be a pair (t0, t1); got {t_span!r}.")
    _check_count(max_steps, "max_steps", "100_000 (the default)")
    _check_count(event_records, "event_records", "1 (the default)")
    if max_step is not None and not (isinstance(max_step, (int, float, np.number)) and max_step > 0):
        raise ValueError(f"`{names.max_step}` must be a positive number (or None for no limit); got {max_step!r}.")
    if not adaptive and dt0 is None:
        raise ValueError(f"`adaptive=False` takes fixed steps of `{names.dt0}`: pass `{names.dt0}=`.")
    if adaptive and not solver.adaptive:
        raise ValueError(
            f"`{solver!r}` has no error estimate, so it cannot adapt its step: pass `adaptive=False, "
            f"{names.dt0}=...`, or use an adaptive method such as `sciml.solvers.Tsit5()`.")
    if ensemble and backend not in ("jax", "c", "cupy"):
        raise ValueError(f"`backend` must be one of {('jax', 'c', 'cupy')}; got {backend!r}.")
    if not ensemble and backend not in ("auto", "jax", "c"):
        raise ValueError(f"`backend` must be \"auto\", \"jax\" or \"c\"; got {backend!r}.")
    _check_state(y0, names, ensemble)
    for e in events or ():
        if not isinstance(e, Event):
            raise TypeError(f"`events` must be a list of `sciml.Event`; got {type(e).__name__}.")


def _check_instance(value, cls, name, example):
    if isinstance(value, cls):
        return
    if isinstance(value, type) and issubclass(value, cls):
        raise TypeError(f"`{name}` must be an instance; got the class {value.__name__}. Call it: `{name}="
                        f"{value.__name__}()`.")
    raise TypeError(f"`{name}` must be an object such as `{example}`; got {value!r} ({type(value).__name__}).")


def _check_count(value, name, example):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive int; got {value!r}. Use e.g. `{name}={example}`.")


def _check_state(y0, names: Names, ensemble: bool):
    leaves = jax.tree_util.tree_leaves(y0)
    if not leaves:
        raise ValueError(f"`{names.y0}` has no arrays; pass the initial state as an array or a pytree of arrays.")
    for leaf in leaves:
        dtype = np.dtype(leaf.dtype) if hasattr(leaf, "dtype") else np.dtype(jnp.result_type(leaf))
        if dtype in STATE_DTYPES:
            continue
        if not jnp.issubdtype(dtype, jnp.inexact):
            raise TypeError(
                f"`{names.y0}` has a leaf of dtype {dtype.name}; ODE states must be floating or complex. "
                f"Convert it explicitly, e.g. `jnp.asarray({names.y0}, jnp.float64)`.")
        raise TypeError(
            f"`{names.y0}` has dtype {dtype.name}; the solvers integrate float32, float64, complex64 or "
            f"complex128 (a {dtype.name} step-size control would stall on its {np.finfo(dtype).bits}-bit "
            f"rounding). Convert it, e.g. `{names.y0}.astype(jnp.float32)`.")
    if ensemble:
        n_trajectories(y0, names)
    sizes = [math.prod(np.shape(x)[1:] if ensemble else np.shape(x)) for x in leaves]
    if sum(sizes) == 0:
        raise ValueError(f"`{names.y0}` has no components (shapes {[np.shape(x) for x in leaves]}); an ODE needs "
                         f"at least one.")


def n_trajectories(y0s, names: Names) -> int:
    """The common leading axis of an ensemble's initial states, at least 1."""
    shapes = [tuple(np.shape(x)) for x in jax.tree_util.tree_leaves(y0s)]
    if any(len(s) == 0 for s in shapes):
        raise ValueError(f"every leaf of `{names.y0}` needs a leading trajectory axis; got shapes {shapes}. "
                         f"For one trajectory use `sciml.solve`, or pass `y0[None]`.")
    n = shapes[0][0]
    if any(s[0] != n for s in shapes):
        raise ValueError(f"the leaves of `{names.y0}` disagree on the number of trajectories (their leading "
                         f"axis); got shapes {shapes}.")
    if n == 0:
        raise ValueError(f"`{names.y0}` holds 0 trajectories (shapes {shapes}); pass at least one initial state.")
    return int(n)


def batched_args(args, args_axes, is_dynamic, n_traj: int) -> tuple[bool, ...]:
    """Per array leaf of ``args``: whether it carries one entry per trajectory (``args_axes`` is a
    pytree prefix of ``args`` with 0/None entries, like `jax.vmap`'s ``in_axes``)."""
    axes: list = []
    try:
        jax.tree_util.tree_map(lambda axis, sub: axes.extend([axis] * len(jax.tree_util.tree_leaves(sub))),
                               args_axes, args, is_leaf=lambda x: x is None)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"`args_axes` must be 0, None, or a pytree prefix of `args` with 0/None entries (like "
            f"`jax.vmap`'s `in_axes`); got {args_axes!r} for `args` of structure "
            f"{jax.tree_util.tree_structure(args)}.") from err
    batched = []
    for (path, leaf), axis, dyn in zip(jax.tree_util.tree_leaves_with_path(args), axes, is_dynamic):
        if axis not in (0, None):
            raise ValueError(f"`args_axes` entries must be 0 (batched along the leading axis) or None "
                             f"(shared); got {axis!r}.")
        if not dyn:
            continue
        shape = tuple(np.shape(leaf))
        if axis == 0 and (not shape or shape[0] != n_traj):
            raise ValueError(
                f"`args{jax.tree_util.keystr(path)}` has shape {shape}, but `args_axes` marks it batched, so its "
                f"leading axis must have one entry per trajectory ({n_traj}). Pass `args_axes=None` for "
                f"arguments shared by all trajectories, or a pytree like `args` with 0 (batched) / None (shared) "
                f"per entry, e.g. `args=(rhos, weights), args_axes=(0, None)`.")
        batched.append(axis == 0)
    return tuple(batched)


def saveat_mode(saveat, names: Names = SOLVE, ensemble: bool = False):
    """``(mode, ts)``: "final", "ts" (with the times), "steps" or "dense"."""
    if saveat is None:
        return "final", None
    if isinstance(saveat, str):
        if ensemble:
            raise ValueError(f"`{names.saveat}` for an ensemble must be None (final states) or an array of times "
                             f"shared by all trajectories; got {saveat!r}. For every step of one trajectory use "
                             f"`sciml.solve(..., saveat=\"steps\")`.")
        if saveat not in SAVEAT_MODES:
            raise ValueError(f"`saveat` must be None, an array of times, \"steps\" or \"dense\"; got {saveat!r}.")
        return saveat, None
    ts = saveat if isinstance(saveat, jax.Array) else np.asarray(saveat)
    if ts.ndim != 1:
        raise ValueError(f"`{names.saveat}` must be a 1-D array of times; got shape {ts.shape}.")
    if not (jnp.issubdtype(ts.dtype, jnp.floating) or jnp.issubdtype(ts.dtype, jnp.integer)):
        raise TypeError(f"`{names.saveat}` must hold real times; got dtype {ts.dtype}.")
    return "ts", ts


def concrete(x):
    """``x`` as a NumPy array, or None when it is traced."""
    if isinstance(x, (int, float, np.ndarray, np.generic)):
        return np.asarray(x)
    try:
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return None   # a global array split over processes: checked in the program, like a traced one
        return np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def check_values(t0, t1, y0, ts, rtol, atol, dt0, names: Names = SOLVE, ensemble: bool = False,
                 scipy_span: bool = False):
    """Value checks on the inputs that are concrete (traced values are checked in the program).

    `sciml.solve_ivp` calls this on every call of a pipeline's loop, where a whole kernel solve takes
    tens of microseconds: the common cases (Python floats, NumPy arrays) take the cheap paths."""
    t0c, t1c = concrete(t0), concrete(t1)
    if t0c is not None and t1c is not None:
        if not (_finite(t0c) and (_finite(t1c) or (scipy_span and not np.isnan(t1c).any()))):
            raise ValueError(f"`t_span` must be finite; got ({t0c}, {t1c}).")
        if (t0c == t1c).any() and not scipy_span:
            raise ValueError(f"`t_span` must have t0 != t1; got ({t0c}, {t1c}). Widen the interval.")
    for leaf in jax.tree_util.tree_leaves(y0):
        c = concrete(leaf)
        if c is not None and not _finite(c):
            _raise_not_finite(y0, names)
    for name, tol in (("rtol", rtol), ("atol", atol)):
        if isinstance(tol, (float, np.floating)):  # a scalar: no shape to check
            problem = tolerance_problem(name, tol)
        else:
            _check_tolerance_shape(tol, y0, name, names, ensemble)
            concretes = [c for c in map(concrete, jax.tree_util.tree_leaves(tol)) if c is not None]
            problem = next(filter(None, (tolerance_problem(name, c) for c in concretes)), None)
        if problem:
            example = names.atol_example if name == "atol" else "1e-6"
            raise ValueError(f"`{name}` {problem}. Use e.g. {name}={example}.")
    if dt0 is not None:
        c = concrete(dt0)
        if c is not None and (c.ndim or not np.isfinite(c) or c == 0):
            raise ValueError(f"`{names.dt0}` must be a finite, nonzero scalar step; got {c}. Leave it out (None) to "
                             f"have the first step chosen automatically.")
    if ts is not None:
        check_saveat(ts, t0, t1, names)


def _finite(c: np.ndarray) -> bool:
    """Whether every entry of ``c`` is finite (a scalar without NumPy's reduction machinery)."""
    return math.isfinite(c) if c.ndim == 0 and c.dtype.kind == "f" else bool(np.isfinite(c).all())


def _raise_not_finite(y0, names: Names):
    for path, leaf in jax.tree_util.tree_leaves_with_path(y0):
        c = np.asarray(leaf)
        if not np.isfinite(c).all():
            index = tuple(int(i) for i in np.argwhere(~np.isfinite(c))[0])
            where = names.y0 + jax.tree_util.keystr(path) + (str(list(index)) if index else "")
            raise ValueError(f"All components of the initial state `{names.y0}` must be finite; got {where}={c[index]}.")


def _check_tolerance_shape(tol, y0, name, names: Names, ensemble: bool):
    """A tolerance is a scalar or a pytree like (one trajectory's) ``y0`` whose leaves broadcast to it."""
    if jax.tree_util.treedef_is_leaf(jax.tree_util.tree_structure(tol)) and jnp.ndim(tol) == 0:
        return
    y_struct = jax.tree_util.tree_structure(y0)
    if jax.tree_util.tree_structure(tol) != y_struct:
        raise ValueError(f"`{name}` must be a scalar or a pytree like `{names.y0}`; got the structure "
                         f"{jax.tree_util.tree_structure(tol)} for `{names.y0}` of structure {y_struct}. Pass one "
                         f"number, e.g. `{name}={1e-6}`.")
    for t, y in zip(jax.tree_util.tree_leaves(tol), jax.tree_util.tree_leaves(y0)):
        shape = tuple(np.shape(y))[1:] if ensemble else tuple(np.shape(y))
        try:
            np.broadcast_shapes(np.shape(t), shape)
            ok = len(np.shape(t)) <= len(shape)
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"`{name}` has a leaf of shape {np.shape(t)} for a state component of shape {shape}; "
                             f"each leaf must be a scalar or broadcast to its component.")


def tolerance_problem(name: str, value) -> str | None:
    """What is wrong with a concrete ``rtol`` or ``atol`` (``name``), or None if nothing: both must be
    finite, ``rtol`` > 0 and ``atol`` >= 0 (0 asks for a purely relative tolerance). Callers name the
    argument and the fix their own way (`sciml.solve`'s ``rtol=1e-6``, the command line's ``--rtol 1e-6``)."""
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and (value > 0 or (name == "atol" and value == 0)):
        return None  # the common case, without building arrays
    c = np.asarray(value)
    finite = np.isfinite(c)
    if not np.all(finite):
        return f"must be finite; got {c[~finite].ravel()[0]}"
    if name == "rtol" and np.any(c <= 0):
        return f"must be > 0; got {c[c <= 0].ravel()[0]}"
    if name == "atol" and np.any(c < 0):
        return f"must be >= 0 (0 for a purely relative tolerance); got {c[c < 0].ravel()[0]}"
    return None


def check_saveat(ts, t0, t1, names: Names = SOLVE):
    """Concrete save times must be finite, sorted along the direction of integration and inside t_span."""
    tsc, t0c, t1c = concrete(ts), concrete(t0), concrete(t1)
    if tsc is None or t0c is None or t1c is None or tsc.size == 0 or np.ndim(t0c) or np.ndim(t1c):
        return
    name = names.saveat
    if not np.isfinite(tsc).all():
        i = int(np.flatnonzero(~np.isfinite(tsc))[0])
        raise ValueError(f"`{name}` must be finite; got {name}[{i}]={tsc[i]}.")
    lo, hi = float(t0c), float(t1c)
    sign = 1.0 if hi >= lo else -1.0
    # a comparison of neighbours, not np.diff: this runs on every call of a pipeline's loop
    unsorted = (tsc[1:] < tsc[:-1]) if sign > 0 else (tsc[1:] > tsc[:-1])
    if unsorted.any():
        i = int(np.flatnonzero(unsorted)[0]) + 1
        order = "increasing" if sign > 0 else "decreasing"
        raise ValueError(f"`{name}` must be sorted ({order}, the direction of integration); got "
                         f"{name}[{i}]={tsc[i]} after {name}[{i - 1}]={tsc[i - 1]}.")
    first, last = sign * float(tsc[0]), sign * float(tsc[-1])  # sorted: the ends decide
    if first < sign * lo or last > sign * hi:
        s = sign * tsc.astype(np.float64)
        i = int(np.flatnonzero((s < sign * lo) | (s > sign * hi))[0])
        raise ValueError(f"`{name}` must be inside `t_span=({lo}, {hi})`; got {name}[{i}]={tsc[i]}. "
                         f"Drop times outside the interval or widen `t_span`.")


def saveat_ok(s_ts, s0, s1):
    """Traced: whether forward-time save points are finite, sorted and inside ``[s0, s1]`` (what
    `check_saveat` checks outside ``jit``)."""
    if s_ts.shape[0] == 0:
        return jnp.asarray(True)
    return (jnp.all(jnp.isfinite(s_ts)) & jnp.all(s_ts[1:] >= s_ts[:-1]) & (s_ts[0] >= s0) & (s_ts[-1] <= s1))


# -- checks while tracing ---------------------------------------------------------------------------
def probe_f(f, t, y, args):
    """Call f once while tracing (dead code afterwards) to learn its output structure and dtypes. The
    user's own error reaches them unchanged, with a note on where it happened."""
    try:
        return f(t, y, args)
    except Exception as err:
        err.add_note("sciml: calling `f(t0, y0, args)` failed while tracing the vector field (the error above is "
                     "f's own). Write `f` with `jax.numpy` and without Python `if`s on `t` or `y` (use "
                     "`jnp.where`).")
        raise


def check_f_output(f, t0, y_state, args, y0_tree, state_dtype):
    out = f(t0, y_state, args)
    s_in = jax.tree_util.tree_structure(y0_tree)
    s_out = jax.tree_util.tree_structure(out)
    if s_in != s_out:
        raise ValueError(f"`f(t, y, args)` must return the structure of `y0`; y0 is {s_in} but f returned {s_out}.")
    for path_leaf, o in zip(jax.tree_util.tree_leaves_with_path(y0_tree), jax.tree_util.tree_leaves(out)):
        path, leaf = path_leaf
        if tuple(o.shape) != tuple(jnp.shape(leaf)):
            where = jax.tree_util.keystr(path) or "y"
            raise ValueError(
                f"`f(t, y, args)` returned shape {tuple(o.shape)} for {where}, but y0 has shape "
                f"{tuple(jnp.shape(leaf))}; dy/dt must have the shape of y.")
        if jnp.result_type(o.dtype, state_dtype) != state_dtype:
            raise TypeError(
                f"`f(t, y, args)` returns {jnp.dtype(o.dtype).name} when given a {jnp.dtype(state_dtype).name} "
                f"state and a {jnp.dtype(t0.dtype).name} `t`, so something in `args` (or a constant in `f`) "
                f"widens it; make f keep the state's dtype (cast `args` to it), or start from `y0` of dtype "
                f"{jnp.dtype(o.dtype).name}.")


def time_dtype(t0, t1, saveat, real_dtype):
    """The dtype of the solver's clock: the widest of the explicit times (arrays), else the state's real
    dtype. The field itself always sees ``t`` in the state's real dtype."""
    explicit = [x for x in (t0, t1) if _is_strong(x)]
    if isinstance(saveat, (np.ndarray, jax.Array)) and _is_strong(saveat):
        explicit.append(saveat)
    if not explicit:
        return real_dtype
    # the dtypes only: jnp.asarray would copy each array to the device to read its dtype
    dtype = jnp.result_type(*[x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype for x in explicit])
    if not jnp.issubdtype(dtype, jnp.floating):
        return jnp.result_type(dtype, real_dtype) if jnp.issubdtype(dtype, jnp.inexact) else real_dtype
    return dtype


def _is_strong(x) -> bool:
    """Whether ``x`` carries its own dtype (an array), as opposed to a Python number."""
    if isinstance(x, (bool, int, float, complex)):
        return False
    if isinstance(x, jax.Array) and getattr(x, "weak_type", False):
        return False
    arr = np.asarray(x) if not isinstance(x, jax.Array) else x
    return jnp.issubdtype(arr.dtype, jnp.floating)


def tolerance_vector(tol, y0_tree, real_dtype, name):
    """A scalar tolerance, or a pytree like ``y0`` flattened to one vector, in the real state dtype."""
    if jax.tree_util.treedef_is_leaf(jax.tree_util.tree_structure(tol)) and jnp.ndim(tol) == 0:
        return jnp.asarray(tol, real_dtype)
    if jax.tree_util.tree_structure(tol) != jax.tree_util.tree_structure(y0_tree):
        raise ValueError(f"`{name}` must be a scalar or a pytree like `y0`; got the structure "
                         f"{jax.tree_util.tree_structure(tol)} for `y0` of structure "
                         f"{jax.tree_util.tree_structure(y0_tree)}. Pass one number, e.g. `{name}=1e-6`.")
    leaves = [jnp.broadcast_to(jnp.asarray(t, real_dtype), jnp.shape(y))
              for t, y in zip(jax.tree_util.tree_leaves(tol), jax.tree_util.tree_leaves(y0_tree))]
    return jnp.concatenate([jnp.ravel(x) for x in leaves])
