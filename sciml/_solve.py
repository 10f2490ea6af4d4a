"""`sciml.solve`: validate the problem, flatten it, run it through the chosen adjoint, build the Solution."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sciml._config import check_precision
from sciml._flat import flatten
from sciml.solvers._control import PIController
from sciml.solvers._events import Event, EventSet, event_value
from sciml.solvers._loop import LoopConfig
from sciml.solvers._solution import Solution, unflatten_batched
from sciml.solvers._status import Status, failed, raise_on_failure

_SAVEAT_MODES = ("dense", "steps")


def solve(f: Callable, y0: Any, t_span, args: Any = None, solver=None, saveat=None,
          rtol=1e-6, atol=1e-6, dt0=None, max_steps: int = 100_000, adjoint=None,
          events: Sequence[Event] | None = None, throw: bool = True, adaptive: bool = True,
          max_step=None, event_records: int = 1, jac: Callable | None = None, backend: str = "auto") -> Solution:
    """Solve the ODE ``dy/dt = f(t, y, args)`` from ``t_span[0]`` to ``t_span[1]``.

    Args:
        f: vector field ``f(t, y, args)`` returning the structure, shapes and (a dtype no wider than
            the state's) of ``y``.
        y0: initial state, any pytree of floating or complex arrays.
        t_span: ``(t0, t1)``; ``t1 < t0`` integrates backwards in time.
        args: anything ``f`` needs (e.g. parameters from ``sciml.layers``); differentiable.
        solver: a solver from ``sciml.solvers`` (default ``Tsit5()``).
        saveat: ``None`` (final state only), an array of times inside ``t_span`` (sorted in the
            direction of integration), ``"steps"`` (every accepted step) or ``"dense"`` (every step
            plus the continuous extension, read with ``sol.evaluate(t)``).
        rtol: relative tolerance, a scalar or a pytree like ``y0``.
        atol: absolute tolerance, a scalar or a pytree like ``y0``.
        dt0: initial step; ``None`` picks it automatically (Hairer's algorithm). Required with
            ``adaptive=False``.
        max_steps: bound on step attempts; hitting it is a failure (``Status.MAX_STEPS``).
        adjoint: how gradients are computed, an object from ``sciml.adjoints`` (default ``Auto()``).
        events: a list of :class:`sciml.Event`.
        throw: raise :class:`SolveError` on failure (inside ``jit``: a runtime error at the boundary).
            With ``throw=False`` inspect ``sol.status`` / ``sol.message()``.
        adaptive: ``False`` takes fixed steps of ``dt0``.
        max_step: largest step allowed.
        event_records: how many crossings of each event to record in ``sol.event_ts``.
        jac: ``jac(t, y, args) -> (n, n)``, the Jacobian ``df/dy`` for a 1-D state ``y0`` of length
            ``n``, used by the stiff solvers in place of forward-mode autodiff of ``f`` (and by
            gradients through them, so it must be written with ``jax.numpy``).
        backend: where the forward solve runs. ``"jax"``: the XLA loop. ``"c"``: sciml's generated C
            kernel (``f`` translated from its jaxpr, compiled once with the system C compiler and
            cached), called from the compiled program as an XLA custom call; the same method, step
            control and statuses, several times less time per call and far less compile time. It
            serves ``saveat`` None or times, no ``events`` or ``jac``, the explicit Runge-Kutta
            methods and Rodas5P, float32/float64 states; gradients and tangents still go through the
            XLA loop of ``adjoint``. ``"auto"`` (default): ``"c"`` where it serves and a C compiler
            is found, else ``"jax"``.

    Returns:
        A :class:`Solution`: ``ts``, ``ys``, ``status``, ``stats``, ``evaluate`` and event fields.

    Dtypes: the state is integrated in ``result_type(y0, f(t0, y0, args))``; float32 stays float32,
    complex stays complex. Times keep the dtype of ``t_span`` when given as arrays, else the state's
    real dtype.

    Example:
        >>> import jax.numpy as jnp, sciml
        >>> sol = sciml.solve(lambda t, y, k: -k * y, jnp.array([1.0]), (0.0, 1.0), args=2.0,
        ...                   saveat=jnp.array([0.5, 1.0]), rtol=1e-8, atol=1e-8)
        >>> bool(jnp.allclose(sol.ys[:, 0], jnp.exp(-2.0 * sol.ts)))
        True
    """
    from sciml.adjoints import Auto
    from sciml.solvers import Tsit5

    solver = Tsit5() if solver is None else solver
    adjoint = Auto() if adjoint is None else adjoint
    _check_arguments(f, y0, t_span, args, saveat, solver, max_steps, adaptive, dt0, events)
    _check_jac(jac, y0, solver)
    if backend not in ("auto", "jax", "c"):
        raise ValueError(f"`backend` must be \"auto\", \"jax\" or \"c\"; got {backend!r}.")
    mode, ts = _saveat_mode(saveat)
    _check_concrete_values(t_span[0], t_span[1], y0, ts, rtol, atol)
    static = _Static(f=f, solver=solver, adjoint=adjoint, mode=mode, max_steps=int(max_steps),
                     adaptive=bool(adaptive), events=tuple(events) if events else None,
                     max_step=None if max_step is None else float(max_step),
                     event_records=int(event_records), auto_dt0=dt0 is None, jac=jac, backend=backend)
    dynamic_args, static_args = _partition(args)
    run = _compiled(static, static_args)
    sol = run(y0, t_span[0], t_span[1], dynamic_args, ts, rtol, atol, dt0)
    if mode in _SAVEAT_MODES:
        sol = _trim_if_concrete(sol)
    sol = _diagnose_stiffness(sol, static, static_args, y0, t_span, dynamic_args, rtol, atol)
    return _throw(sol) if throw else sol


@dataclasses.dataclass(frozen=True)
class _Static:
    """The options of a solve that select its compiled program (everything but array values)."""

    f: Callable
    solver: Any
    adjoint: Any
    mode: str
    max_steps: int
    adaptive: bool
    events: tuple | None
    max_step: float | None
    event_records: int
    auto_dt0: bool
    jac: Callable | None = None
    backend: str = "auto"


def _partition(args):
    """Split ``args`` into array-like leaves (traced) and everything else (part of the cache key)."""
    leaves, treedef = jax.tree_util.tree_flatten(args)
    is_dynamic = [isinstance(x, (jax.Array, np.ndarray, np.generic, bool, int, float, complex)) for x in leaves]
    dynamic = [x for x, d in zip(leaves, is_dynamic) if d]
    static = (treedef, tuple(is_dynamic), tuple(x for x, d in zip(leaves, is_dynamic) if not d))
    return dynamic, static


def _compiled(static: _Static, static_args):
    """The jitted solve for these options, cached; uncached if an option is unhashable."""
    try:
        return _compiled_cached(static, static_args)
    except TypeError:  # an unhashable f or static arg: compile for this call only
        return _make_run(static, static_args)


@functools.lru_cache(maxsize=256)
def _compiled_cached(static, static_args):
    return _make_run(static, static_args)


def _rebuilder(static_args):
    """``rebuild(dynamic_args)``: the user's ``args`` with the static leaves put back."""
    treedef, is_dynamic, static_leaves = static_args

    def rebuild(dynamic_args):
        it_d, it_s = iter(dynamic_args), iter(static_leaves)
        return jax.tree_util.tree_unflatten(treedef, [next(it_d) if d else next(it_s) for d in is_dynamic])

    return rebuild


def _make_run(static: _Static, static_args):
    from sciml._solve_kernel import kernel_integrate

    rebuild = _rebuilder(static_args)

    def run(y0, t0, t1, dynamic_args, ts, rtol, atol, dt0):
        problem = _prepare(static, rebuild, y0, t0, t1, dynamic_args, ts, rtol, atol, dt0)
        res = kernel_integrate(static, problem)
        if res is None:
            res = static.adjoint.integrate(problem.cfg, problem.f, problem.y0, problem.s0, problem.s1,
                                           problem.args, problem.s_ts, problem.rtol, problem.atol, problem.dt0)
        return _build_solution(problem, res)

    return jax.jit(run)


class _Problem:
    """Everything `solve` derives from its arguments, in the loop's flat, forward-time form."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


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
        if saveat not in _SAVEAT_MODES:
            raise ValueError(f"`saveat` must be None, an array of times, \"steps\" or \"dense\"; got {saveat!r}.")
        return saveat, None
    ts = saveat if isinstance(saveat, jax.Array) else np.asarray(saveat)
    if ts.ndim != 1:
        raise ValueError(f"`saveat` must be a 1-D array of times; got shape {ts.shape}.")
    return "ts", ts


def _prepare(static: _Static, rebuild, y0, t0_in, t1_in, dynamic_args, ts_user, rtol, atol,
             dt0) -> _Problem:
    """Flatten the problem into the loop's form: flat state, forward time, and ``args`` reduced to
    its array leaves (``rebuild`` puts the static leaves back before calling the user's functions)."""
    user_f = static.f
    f = lambda t, y, dyn: user_f(t, y, rebuild(dyn))  # noqa: E731
    args = dynamic_args
    y0_flat, _ = flatten(y0)
    y0_tree = jax.tree_util.tree_map(jnp.asarray, y0)

    # The state dtype is what f's output promotes it to (never lower than y0's).
    out = _probe_f(f, jnp.asarray(t0_in), y0_tree, args)
    for leaf in jax.tree_util.tree_leaves(out):
        if not isinstance(leaf, (jax.Array, np.ndarray, np.generic)):
            raise TypeError(f"calling `f(t0, y0, args)` failed: it returned a {type(leaf).__name__} where "
                            f"dy/dt needs an array (the structure of `y0`).")
    out_dtypes = [o.dtype for o in jax.tree_util.tree_leaves(out)]
    for dtype in out_dtypes:
        if not jnp.issubdtype(dtype, jnp.number) or jnp.issubdtype(dtype, jnp.bool_):
            raise TypeError(f"`f(t, y, args)` returned dtype {jnp.dtype(dtype).name}; dy/dt must be numeric.")
        if jnp.issubdtype(dtype, jnp.complexfloating) and not jnp.iscomplexobj(y0_flat):
            raise TypeError(
                f"`f(t, y, args)` returned {jnp.dtype(dtype).name} for a real state. To integrate in the "
                f"complex plane pass a complex `y0` (e.g. `y0.astype(jnp.complex128)`); otherwise take "
                f"the real part inside `f`.")
    state_dtype = jnp.result_type(y0_flat.dtype, *out_dtypes)
    real_dtype = jnp.zeros((), state_dtype).real.dtype
    time_dtype = _time_dtype(t0_in, t1_in, ts_user, real_dtype)
    t0 = jnp.asarray(t0_in, time_dtype)
    t1 = jnp.asarray(t1_in, time_dtype)
    y0_flat = y0_flat.astype(state_dtype)
    _, unflatten = flatten(jax.tree_util.tree_map(lambda x: jnp.asarray(x).astype(state_dtype), y0_tree))
    _check_f_output(f, t0, unflatten(y0_flat), args, y0_tree, state_dtype)

    direction = jnp.where(t1 >= t0, 1, -1).astype(time_dtype)
    s_ts = (jnp.zeros((0,), time_dtype) if ts_user is None
            else jnp.asarray(ts_user).astype(time_dtype) * direction)
    rtol_flat = _tolerance(rtol, y0_tree, real_dtype, "rtol")
    atol_flat = _tolerance(atol, y0_tree, real_dtype, "atol")

    def f_forward(s, y, a):
        flat, _ = flatten(f(s * direction, unflatten(y), a))
        return direction.astype(real_dtype) * flat.astype(state_dtype)

    if static.jac is not None:
        f_forward = _with_user_jacobian(static.jac, rebuild, f_forward, direction, unflatten, t0, y0_flat, args)

    ev_set = None
    if static.events:
        conds = tuple(e.cond for e in static.events)

        def event_values(s, y, a):
            t, tree, user_args = s * direction, unflatten(y), rebuild(a)
            return jnp.stack([event_value(c(t, tree, user_args), i) for i, c in enumerate(conds)])

        ev_set = EventSet(values=event_values, terminal=tuple(e.terminal for e in static.events),
                          directions=tuple(e.direction for e in static.events), records=static.event_records)

    controller = PIController(dtmax=static.max_step)
    cfg = LoopConfig(solver=static.solver, controller=controller, max_steps=static.max_steps,
                     adaptive=static.adaptive, record_steps=static.mode in _SAVEAT_MODES,
                     record_dense=static.mode == "dense", events=ev_set)
    dt0_s = None if dt0 is None else jnp.abs(jnp.asarray(dt0, time_dtype))
    return _Problem(cfg=cfg, f=f_forward, y0=y0_flat, s0=t0 * direction, s1=t1 * direction, args=args,
                    s_ts=s_ts, rtol=rtol_flat, atol=atol_flat, dt0=dt0_s, mode=static.mode,
                    ts_user=ts_user, direction=direction, unflatten=unflatten, time_dtype=time_dtype, f_user=f,
                    solver=static.solver, max_steps=static.max_steps)


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


def _with_user_jacobian(jac, rebuild, f_forward, direction, unflatten, t0, y0_flat, args):
    """``f_forward`` differentiated in ``y`` by the user's ``jac`` (forward time, flat state)."""
    from sciml.solvers._linsolve import attach_jacobian

    n, dtype = y0_flat.shape[0], y0_flat.dtype

    def jac_forward(s, y, a):
        return direction.astype(dtype) * jnp.asarray(jac(s * direction, unflatten(y), rebuild(a)))

    probe = jac_forward(t0 * direction, y0_flat, args)
    if probe.shape != (n, n):
        raise ValueError(f"`jac(t, y, args)` must return the ({n}, {n}) Jacobian df/dy for a state of length {n}; "
                         f"got shape {probe.shape}.")
    if jnp.result_type(probe.dtype, dtype) != dtype:
        raise TypeError(f"`jac(t, y, args)` returns {probe.dtype.name} for a {dtype.name} state; make it keep the "
                        f"state's dtype.")
    return attach_jacobian(f_forward, lambda s, y, a: jac_forward(s, y, a).astype(dtype))


def _diagnose_stiffness(sol, static, static_args, y0, t_span, dynamic_args, rtol, atol):
    """On a concrete failure of an explicit solver at max_steps or dt underflow, check whether the problem
    is stiff there (``_stiffness.py``) so that the message can say so. Costs nothing on success."""
    status = _concrete(sol.status)
    if (status is None or np.ndim(status) or not failed(status) or getattr(static.solver, "stiff", False)
            or int(status) not in (Status.MAX_STEPS, Status.DT_UNDERFLOW)):
        return sol
    try:
        probe = _stiffness_probe(static, static_args)
    except TypeError:  # an unhashable option (as in `_compiled`): build it for this call only
        probe = _stiffness_probe.__wrapped__(static, static_args)
    stiff = probe(y0, t_span[0], t_span[1], dynamic_args, rtol, atol, sol.t_final, sol.y_final, sol._last_dt)
    return _replace(sol, _looks_stiff=bool(stiff))


@functools.lru_cache(maxsize=32)
def _stiffness_probe(static: _Static, static_args):
    from sciml.solvers._stiffness import looks_stiff, stability_bound

    rebuild, bound = _rebuilder(static_args), stability_bound(static.solver)

    def probe(y0, t0, t1, dynamic_args, rtol, atol, t_final, y_final, dt):
        p = _prepare(static, rebuild, y0, t0, t1, dynamic_args, None, rtol, atol, None)
        y = flatten(y_final)[0].astype(p.y0.dtype)
        return looks_stiff(lambda s, v: p.f(s, v, p.args), t_final * p.direction, y, dt, p.rtol, p.atol, bound)

    return jax.jit(probe)


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
            if c is None:
                continue
            if name == "rtol" and np.any(c <= 0):
                raise ValueError(f"`rtol` must be > 0; got {c}. Use e.g. rtol=1e-6.")
            if name == "atol" and np.any(c < 0):
                raise ValueError(f"`atol` must be >= 0; got {c}. Use e.g. atol=1e-6 (0 for a purely relative "
                                 f"tolerance).")
    if ts is not None:
        _check_saveat(ts, t0, t1)


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


def _build_solution(p: _Problem, res) -> Solution:
    d = p.direction
    unflatten = p.unflatten
    t_final = (res.t * d).astype(p.time_dtype)
    y_final = unflatten(res.y)
    if p.mode == "final":
        ts = t_final[None]
        ys = jax.tree_util.tree_map(lambda x: x[None], y_final)
    elif p.mode == "ts":
        ts = p.ts_user
        ys = unflatten_batched(unflatten, res.ys, 1)
    else:
        ts = res.rec_t * d
        ys = unflatten_batched(unflatten, res.rec_y, 1)
    ev = res.events
    has_events = p.cfg.events is not None
    dense = p.mode == "dense"
    sol = Solution(
        ts=ts, ys=ys, t_final=t_final, y_final=y_final, status=res.status, stats=res.stats,
        event_t=(ev.t[:, 0] * d) if has_events else None,
        event_ts=(ev.t * d) if has_events else None,
        event_ys=unflatten_batched(unflatten, ev.y, 2) if has_events else None,
        event_count=ev.count if has_events else None,
        event=ev.fired if has_events else jnp.asarray(-1, jnp.int32),
        _dense_t=res.rec_t if dense else None, _dense_dt=res.rec_dt if dense else None,
        _dense_coeffs=res.rec_dense if dense else None, _n_steps=res.n_accept,
        _time_sign=d, _last_dt=res.dt, _unflatten=unflatten, _max_steps=p.max_steps,
        _solver_stiff=bool(getattr(p.solver, "stiff", False)))
    if p.mode in _SAVEAT_MODES:
        sol = _trim_if_concrete(sol)
    return sol


def _trim_if_concrete(sol: Solution) -> Solution:
    n = _concrete(sol._n_steps)
    if n is None or np.ndim(n) != 0 or _concrete(sol.ts) is None:
        return sol
    n = int(n)
    ys = jax.tree_util.tree_map(lambda x: x[: n + 1], sol.ys)
    return _replace(sol, ts=sol.ts[: n + 1], ys=ys)


def _replace(sol, **kw):
    return dataclasses.replace(sol, **kw)


def _throw(sol: Solution) -> Solution:
    """Raise on failure: at once when the status is concrete, else at run time (see `raise_on_failure`)."""
    status = _concrete(sol.status)
    if status is not None:
        sol.raise_if_failed()
        return sol
    ys, y_final = raise_on_failure((sol.ys, sol.y_final), sol.status, sol.t_final, sol._last_dt,
                                   sol._max_steps, solver_stiff=sol._solver_stiff,
                                   time_dtype=jnp.dtype(sol.t_final.dtype).name)
    return _replace(sol, ys=ys, y_final=y_final)
