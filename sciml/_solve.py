"""`sciml.solve`: validate the problem, flatten it, run it through the chosen adjoint, build the Solution."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sciml._flat import flatten
from sciml._solve_checks import (SAVEAT_MODES as _SAVEAT_MODES, _check_arguments, _check_concrete_values,
                                 _check_f_output, _check_jac, _concrete, _probe_f, _saveat_mode, _time_dtype,
                                 _tolerance)
from sciml.solvers._control import PIController
from sciml.solvers._events import Event, EventSet, event_value
from sciml.solvers._loop import LoopConfig
from sciml.solvers._solution import Solution, unflatten_batched
from sciml.solvers._status import Status, failed, raise_on_failure


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
