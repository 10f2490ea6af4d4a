"""Checks and normalisations of `sciml.solve`'s inputs, outside `jit` where values are concrete and in
the traced program where only shapes and dtypes are known. Each error names the argument, what was
received and the fix."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sciml._config import check_precision
from sciml.solvers._events import Event

#: the `saveat` modes that record every step
SAVEAT_MODES = ("dense", "steps")


def _check_arguments(f, y0, t_span, args, saveat, solver, max_steps, adaptive, dt0, events):
    """Checks that need no tracing: types, precision, static options."""
    check_precision(y0, "y0")
    check_precision(args, "args")
    check_precision(t_span, "t_span")
    if isinstance(saveat, (np.ndarray, np.generic)):
        check_precision(saveat, "saveat")
    if not callable(f):
        raise TypeError(f"`f` must be a callable f(t, y, args); got {type(f).__name__}.")
    if not (isinstance(t_span, (tuple, list)) and len(t_span) == 2) and not (
            hasattr(t_span, "shape") and tuple(t_span.shape) == (2,)):
        raise ValueError(f"`t_span` must be a pair (t0, t1); got {t_span!r}.")
    if not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise ValueError(f"`max_steps` must be a positive int; got {max_steps!r}. Use e.g. `max_steps=100_000` "
                         f"(the default).")
    if not adaptive and dt0 is None:
        raise ValueError("`adaptive=False` takes fixed steps of `dt0`: pass `dt0=`.")
    if adaptive and not solver.adaptive:
        raise ValueError(
            f"`{solver!r}` has no error estimate, so it cannot adapt its step: pass `adaptive=False, "
            f"dt0=...`, or use an adaptive method such as `sciml.solvers.Tsit5()`.")
    leaves = jax.tree_util.tree_leaves(y0)
    if not leaves:
        raise ValueError("`y0` has no arrays; pass the initial state as an array or a pytree of arrays.")
    for leaf in leaves:
        dtype = jnp.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.inexact):
            raise TypeError(
                f"`y0` has a leaf of dtype {jnp.dtype(dtype).name}; ODE states must be floating or "
                f"complex. Convert it explicitly, e.g. `jnp.asarray(y0, jnp.float64)`.")
    for e in events or ():
        if not isinstance(e, Event):
            raise TypeError(f"`events` must be a list of `sciml.Event`; got {type(e).__name__}.")


def _saveat_mode(saveat):
    if saveat is None:
        return "final", None
    if isinstance(saveat, str):
        if saveat not in SAVEAT_MODES:
            raise ValueError(f"`saveat` must be None, an array of times, \"steps\" or \"dense\"; got {saveat!r}.")
        return saveat, None
    ts = saveat if isinstance(saveat, jax.Array) else np.asarray(saveat)
    if ts.ndim != 1:
        raise ValueError(f"`saveat` must be a 1-D array of times; got shape {ts.shape}.")
    return "ts", ts


def _check_jac(jac, y0, solver):
    if jac is None:
        return
    if not callable(jac):
        raise TypeError(f"`jac` must be a callable jac(t, y, args) returning the (n, n) Jacobian df/dy; got "
                        f"{type(jac).__name__}.")
    if not getattr(solver, "stiff", False):
        raise ValueError(f"`jac=` is used by the stiff solvers (Rodas5P, Rosenbrock23, Kvaerno5, BDF); `{solver!r}` "
                         f"never forms a Jacobian. Drop `jac=`, or pass e.g. `solver=sciml.solvers.Rodas5P()`.")
    if not isinstance(y0, (jax.Array, np.ndarray)) or jnp.ndim(y0) != 1:
        got = (f"shape {tuple(jnp.shape(y0))}" if isinstance(y0, (jax.Array, np.ndarray))
               else f"a {type(y0).__name__} of {len(jax.tree_util.tree_leaves(y0))} arrays")
        raise ValueError(f"`jac=` needs `y0` to be one 1-D array (then df/dy is an (n, n) matrix); got {got}. "
                         f"Flatten the state into one vector, or leave out `jac` (sciml then uses `jax.jacfwd`).")


def _probe_f(f, t, y, args):
    """Call f once while tracing (dead code afterwards) to learn its output structure and dtypes."""
    try:
        return f(t, y, args)
    except Exception as err:  # re-raised with the call that failed named
        raise type(err)(f"calling `f(t0, y0, args)` failed: {err}") from err


def _check_f_output(f, t0, y_state, args, y0_tree, state_dtype):
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
                f"state; make f keep the state's dtype, or start from `y0` of dtype {jnp.dtype(o.dtype).name}.")


def _time_dtype(t0, t1, saveat, real_dtype):
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


def _concrete(x):
    try:
        return np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def _check_concrete_values(t0, t1, y0, ts, rtol, atol):
    """Value checks on inputs that are concrete (skipped for traced values)."""
    t0c, t1c = _concrete(t0), _concrete(t1)
    if t0c is not None and t1c is not None:
        if not (np.all(np.isfinite(t0c)) and np.all(np.isfinite(t1c))):
            raise ValueError(f"`t_span` must be finite; got ({t0c}, {t1c}).")
        if np.any(t0c == t1c):
            raise ValueError(f"`t_span` must have t0 != t1; got ({t0c}, {t1c}). Widen the interval.")
    for path, leaf in jax.tree_util.tree_leaves_with_path(y0):
        c = _concrete(leaf)
        if c is not None and not np.all(np.isfinite(c)):
            where = jax.tree_util.keystr(path) or "y0"
            raise ValueError(f"`y0` must be finite; {where} contains {c[~np.isfinite(c)].ravel()[0]}.")
    for name, tol in (("rtol", rtol), ("atol", atol)):
        for leaf in jax.tree_util.tree_leaves(tol):
            c = _concrete(leaf)
            problem = None if c is None else tolerance_problem(name, c)
            if problem:
                raise ValueError(f"`{name}` {problem}. Use e.g. {name}=1e-6.")
    if ts is not None:
        _check_saveat(ts, t0, t1)


def tolerance_problem(name: str, value) -> str | None:
    """What is wrong with a concrete ``rtol`` or ``atol`` (``name``), or None if nothing: both must be
    finite, ``rtol`` > 0 and ``atol`` >= 0 (0 asks for a purely relative tolerance). Callers name the
    argument and the fix their own way (`sciml.solve`'s ``rtol=1e-6``, the command line's ``--rtol 1e-6``)."""
    c = np.asarray(value)
    finite = np.isfinite(c)
    if not np.all(finite):
        return f"must be finite; got {c[~finite].ravel()[0]}"
    if name == "rtol" and np.any(c <= 0):
        return f"must be > 0; got {c[c <= 0].ravel()[0]}"
    if name == "atol" and np.any(c < 0):
        return f"must be >= 0 (0 for a purely relative tolerance); got {c[c < 0].ravel()[0]}"
    return None


def _check_saveat(ts, t0, t1):
    tsc, t0c, t1c = _concrete(ts), _concrete(t0), _concrete(t1)
    if tsc is None or t0c is None or t1c is None or tsc.size == 0 or np.ndim(t0c) or np.ndim(t1c):
        return
    sign = 1.0 if t1c >= t0c else -1.0
    s = sign * tsc.astype(np.float64)
    lo, hi = sign * float(t0c), sign * float(t1c)
    if np.any(np.diff(s) < 0):
        i = int(np.flatnonzero(np.diff(s) < 0)[0]) + 1
        order = "increasing" if sign > 0 else "decreasing"
        raise ValueError(f"`saveat` must be sorted ({order}, the direction of integration); got "
                         f"saveat[{i}]={tsc[i]} after saveat[{i - 1}]={tsc[i - 1]}.")
    outside = (s < lo) | (s > hi)
    if np.any(outside):
        i = int(np.flatnonzero(outside)[0])
        raise ValueError(f"`saveat` must be inside `t_span=({float(t0c)}, {float(t1c)})`; got saveat[{i}]={tsc[i]}. "
                         f"Drop times outside the interval or widen `t_span`.")


def _tolerance(tol, y0_tree, real_dtype, name):
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
