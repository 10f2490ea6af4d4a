"""The integration loop: one ``lax.while_loop`` over step attempts, on a flat state vector.

Time always runs forward here: ``sciml.solve`` maps a backward solve onto a forward one. Everything a
step needs beyond the solver (error control, save points, events, records for dense output and for
adjoints, status) lives in this file and knows no method by name.

On the CPU a step costs a few dozen small XLA kernels, so the body keeps its buffers small (see
``_saving.py``) and avoids control flow on the common path; counters that can be derived (rejections,
evaluations) are derived after the loop.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from sciml.solvers._base import AbstractSolver, dense_degree
from sciml.solvers._control import PIController, guess_order, initial_step, step_cap
from sciml.solvers._events import EventSet
from sciml.solvers._lockstep import while_active
from sciml.solvers._saving import SavePoints, StepPoly
from sciml.solvers._status import Status


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    """Static (hashable) options of one integration."""

    solver: AbstractSolver
    controller: PIController
    max_steps: int
    adaptive: bool = True
    record_steps: bool = False      # store (t, dt, y) of every accepted step (saveat="steps", adjoints)
    record_dense: bool = False      # also store each step's interpolating polynomial (saveat="dense")
    events: EventSet | None = None
    jumps: bool = False             # steps land on `jump_ts` and add `jump_values` to the state there


class LoopState(NamedTuple):
    t: jax.Array
    y: jax.Array
    f0: jax.Array
    dt: jax.Array
    controller: Any
    solver: Any
    n_attempt: jax.Array
    n_accept: jax.Array
    n_dense: jax.Array              # steps whose dense output was built (for the evaluation count)
    status: jax.Array
    saves: Any                      # SaveState of the save points (() when there are none)
    rec_t: jax.Array                # (M + 1,) times of accepted steps, inf past the end
    rec_dt: jax.Array               # (M,) step sizes actually taken
    rec_y: jax.Array                # (M + 1, n) states of accepted steps
    rec_dense: jax.Array            # (M, degree + 1, n) step polynomials
    events: Any
    jump_idx: jax.Array             # next jump to apply
    rec_method: jax.Array           # (M,) int32 method of each accepted step (solvers with `method_index`)
    newton_failing: jax.Array       # the attempts since the last accepted step include a Newton failure


#: LoopState fields written only where a finished trajectory's writes are harmless (see _lockstep.py)
_BUFFERS = frozenset({"rec_t", "rec_dt", "rec_y", "rec_dense", "rec_method"})


class LoopResult(NamedTuple):
    t: jax.Array                    # where the solve stopped (t1, an event, or a failure)
    y: jax.Array
    ys: jax.Array
    status: jax.Array
    stats: dict
    dt: jax.Array                   # the last proposed step (for messages)
    rec_t: jax.Array
    rec_dt: jax.Array
    rec_y: jax.Array
    rec_dense: jax.Array
    n_accept: jax.Array
    events: Any
    rec_method: Any = None          # (M,) which method took each recorded step (AutoSwitch), else (0,)


def integrate(cfg: LoopConfig, f: Callable, y0, t0, t1, args, ts, rtol, atol, dt0,
              jump_ts=None, jump_values=None) -> LoopResult:
    """Integrate ``y' = f(t, y, args)`` (flat ``y``) from ``t0`` to ``t1 > t0``.

    ``ts`` is a sorted array of save points in ``[t0, t1]`` (possibly empty). ``dt0`` is ``None`` for
    Hairer's automatic guess. With ``cfg.jumps``, steps land exactly on the sorted, distinct times
    ``jump_ts`` in ``(t0, t1]`` and ``jump_values[j]`` is added to the state there (after saving the
    left limit); an adjoint uses this to add output cotangents in a single backward solve. Returns raw
    buffers; ``sciml.solve`` turns them into a ``Solution``.
    """
    solver, controller, events = cfg.solver, cfg.controller, cfg.events
    time_dtype = t0.dtype
    real_dtype = jnp.zeros((), y0.dtype).real.dtype
    fb = lambda t, y: f(t, y, args)  # noqa: E731
    n, m, M = y0.shape[0], ts.shape[0], cfg.max_steps
    lazy_dense = solver.fevals_dense > 0

    f0 = fb(t0, y0)
    if dt0 is None:
        dt = initial_step(fb, t0, y0, f0, rtol, atol, guess_order(solver, controller), time_dtype,
                          step_cap(t0, t1, controller.dtmax))
    else:
        dt = jnp.asarray(dt0, time_dtype)
    dt = jnp.minimum(dt, t1 - t0)
    if controller.dtmax is not None:
        dt = jnp.minimum(dt, jnp.asarray(controller.dtmax, time_dtype))

    degree = _dense_degree(solver, fb, t0, y0, dt, f0, rtol, atol)
    nan_y = jnp.full((n,), jnp.nan, y0.dtype)
    M_rec = M if cfg.record_steps or cfg.record_dense else 0
    # One scratch row past the end of each record: see _lockstep.py (sliced off after the loop).
    scratch = 1 if M_rec else 0
    rec_t = jnp.full((M_rec + 1 + scratch,), jnp.inf, time_dtype).at[0].set(t0)
    rec_y = (jnp.broadcast_to(nan_y, (M_rec + 1 + scratch, n)).at[0].set(y0) if M_rec else jnp.zeros((1, n), y0.dtype))
    M_dense = M + 1 if cfg.record_dense else 0
    rec_dense = jnp.zeros((M_dense, degree + 1, n), y0.dtype)

    saver = SavePoints(ts, n, y0.dtype) if m else None

    ev_state = events.init(args, t0, y0) if events is not None else ()
    if cfg.jumps:
        jump_ts = jnp.concatenate([jump_ts.astype(time_dtype), jnp.full((1,), jnp.inf, time_dtype)])
        jump_values = jnp.concatenate([jump_values, jnp.zeros((1, n), y0.dtype)])
    int_zero = jnp.zeros((), jnp.int32)
    # A solver that picks one of several methods per step (AutoSwitch) records the pick, so that the
    # reverse sweep of `Direct` replays each step with the method that took it.
    tagged = bool(M_rec) and hasattr(solver, "method_index")
    rec_method = jnp.zeros((M_rec + scratch if tagged else 0,), jnp.int32)
    finite0 = jnp.all(jnp.isfinite(y0)) & jnp.all(jnp.isfinite(f0))
    state = LoopState(
        t=t0, y=y0, f0=f0, dt=dt, controller=controller.init(real_dtype),
        solver=_solver_init(solver, fb, t0, y0, f0, dt, rtol, atol), n_attempt=int_zero, n_accept=int_zero,
        n_dense=int_zero,
        status=jnp.where(finite0, Status.SUCCESS, Status.NONFINITE).astype(jnp.int32),
        saves=saver.init(t0, y0) if m else (), rec_t=rec_t, rec_dt=jnp.full((M_rec + scratch,), jnp.nan, time_dtype),
        rec_y=rec_y, rec_dense=rec_dense, events=ev_state, jump_idx=int_zero, rec_method=rec_method,
        newton_failing=jnp.zeros((), bool))

    def cond_fun(s: LoopState):
        return (s.t < t1) & (s.status == Status.SUCCESS)

    # A step ending within a few ulps of t1 is stretched to end exactly there (no sliver steps).
    snap = 64 * jnp.finfo(time_dtype).eps * jnp.maximum(jnp.abs(t0), jnp.abs(t1))

    def body_fun(s: LoopState) -> LoopState:
        target = jnp.minimum(t1, jump_ts[s.jump_idx]) if cfg.jumps else t1
        last = s.dt >= target - s.t - snap
        dt = jnp.where(last, target - s.t, s.dt)
        step = solver.step(fb, s.t, s.y, s.f0, dt, s.solver)
        t_new = jnp.where(last, target, s.t + dt)
        if cfg.adaptive:
            err = jnp.where(step.ok, solver.error_norm(step.y_err, s.y, step.y1, rtol, atol), jnp.inf)
            accept, dt_next, cstate = controller.adapt(err, dt, solver.error_order, s.controller)
            # A clipped final step must not shrink the step carried on.
            dt_next = jnp.where(accept & last, jnp.maximum(dt_next, s.dt), dt_next)
            nonfinite = ~jnp.isfinite(err)
        else:
            nonfinite = ~(jnp.all(jnp.isfinite(step.y1)) & step.ok)
            accept, dt_next, cstate = ~nonfinite, s.dt, s.controller
            err = jnp.where(nonfinite, jnp.inf, 0.0)
        sstate, dt_solver = solver.after_step(step.state, s.solver, accept, dt, dt_next, err)
        if cfg.adaptive:  # a method's own step selection (BDF) still obeys `max_step`; fixed steps stay fixed
            dt_next = dt_solver if controller.dtmax is None else jnp.minimum(
                dt_solver, jnp.asarray(controller.dtmax, dt_solver.dtype))
        if solver.fsal:
            f1 = step.f1
        else:
            f1 = lax.cond(accept, lambda: fb(t_new, step.y1), lambda: s.f0)

        def dense():
            return solver.dense(fb, s.t, s.y, dt, step.y1, s.f0, f1, step.info)

        n_dense = s.n_dense
        if lazy_dense:
            need = accept & (cfg.record_dense | (saver.pending(s.saves, t_new) if m else False))
            if events is not None:
                need = need | (accept & events.crossed(s.events, events.values(t_new, step.y1, args)))
            coeffs = lax.cond(need, dense, lambda: jnp.zeros((degree + 1, n), y0.dtype))
            n_dense = n_dense + need.astype(jnp.int32)
        else:
            coeffs = dense()

        t_end, y_end, hit, ev_state = t_new, step.y1, jnp.asarray(False), s.events
        if events is not None:
            g_new = events.values(t_new, step.y1, args)
            ev_state, hit, t_end, y_end = events.locate(
                ev_state, accept, g_new, args, s.t, dt, t_new, step.y1, coeffs)
        saves = s.saves
        if m:
            poly = StepPoly(s.t, dt, t_end, y_end, t_new, step.y1, coeffs)
            saves = lax.cond(accept & saver.pending(saves, t_end), lambda: saver.write(saves, poly),
                             lambda: saves)

        jump_idx = s.jump_idx
        if cfg.jumps:
            jumped = accept & ~hit & (t_end == jump_ts[jump_idx])
            y_end = y_end + jnp.where(jumped, jump_values[jump_idx], 0)
            # The derivative at the new state is no longer the step's last stage.
            f1 = lax.cond(jumped, lambda: fb(t_end, y_end), lambda: f1)
            jump_idx = jump_idx + jumped.astype(jnp.int32)

        rec_t, rec_dt, rec_y, rec_dense, rec_method = s.rec_t, s.rec_dt, s.rec_y, s.rec_dense, s.rec_method
        if M_rec:
            # Written at every attempt: a rejected candidate's slot is overwritten by the next
            # accepted step, and slots past the last accepted step are masked after the loop.
            k = s.n_accept
            rec_t = _put(rec_t, k + 1, t_end)
            rec_dt = _put(rec_dt, k, dt)
            rec_y = _put(rec_y, k + 1, y_end)
            if cfg.record_dense:
                rec_dense = _put(rec_dense, k, coeffs)
            if tagged:
                rec_method = _put(rec_method, k, solver.method_index(s.solver))

        n_attempt = s.n_attempt + 1
        t_next = jnp.where(accept, t_end, s.t)
        # An implicit solver whose Newton iteration keeps failing shrinks dt until it underflows, or
        # until its Newton matrix is singular in floating point and the stages are NaN: both are Newton's
        # failure, not a non-finite field.
        newton = ~step.ok | s.newton_failing
        newton_failing = ~accept & newton
        nonfinite_cause = jnp.where(newton, Status.NEWTON_FAILED, Status.NONFINITE)
        status = jnp.where(accept & ~jnp.all(jnp.isfinite(f1)) & ~hit, nonfinite_cause, s.status)
        if cfg.adaptive:
            underflow = ~accept & (s.t + dt_next <= s.t)
            cause = jnp.where(newton, Status.NEWTON_FAILED, jnp.where(nonfinite, Status.NONFINITE,
                                                                      Status.DT_UNDERFLOW))
            status = jnp.where(underflow, cause, status)
        else:
            status = jnp.where(nonfinite, nonfinite_cause, status)
        status = jnp.where(hit, Status.EVENT, status)
        out_of_steps = (n_attempt >= cfg.max_steps) & (t_next < t1) & (status == Status.SUCCESS)
        status = jnp.where(out_of_steps, Status.MAX_STEPS, status).astype(jnp.int32)
        return LoopState(
            t=t_next, y=jnp.where(accept, y_end, s.y), f0=jnp.where(accept, f1, s.f0), dt=dt_next,
            controller=cstate, solver=sstate, n_attempt=n_attempt,
            n_accept=s.n_accept + accept.astype(jnp.int32), n_dense=n_dense, status=status,
            saves=saves, rec_t=rec_t, rec_dt=rec_dt, rec_y=rec_y, rec_dense=rec_dense,
            events=ev_state, jump_idx=jump_idx, rec_method=rec_method, newton_failing=newton_failing)

    s = while_active(cond_fun, body_fun, state, _BUFFERS)
    ys_out = saver.finish(s.saves) if m else jnp.zeros((0, n), y0.dtype)
    rec_t, rec_dt, rec_y, rec_dense = s.rec_t, s.rec_dt, s.rec_y, s.rec_dense[:M if M_dense else 0]
    if M_rec:
        rows = jnp.arange(M_rec + 1)
        rec_t = jnp.where(rows <= s.n_accept, rec_t[:-1], jnp.inf)
        rec_dt = jnp.where(rows[:-1] < s.n_accept, rec_dt[:-1], jnp.nan)
        rec_y = jnp.where((rows <= s.n_accept)[:, None], rec_y[:-1], nan_y[None, :])
    nfev = (1 + (dt0 is None) + solver.fevals_per_step * s.n_attempt
            + (0 if solver.fsal else 1) * s.n_accept + solver.fevals_dense * s.n_dense + s.jump_idx)
    stats = {"nfev": nfev.astype(jnp.int32), "naccept": s.n_accept, "nreject": s.n_attempt - s.n_accept}
    extra = dict(solver.stats(s.solver)) if hasattr(solver, "stats") else {}
    # Implicit solvers' Newton iterations vary in length: they count those evaluations themselves.
    stats["nfev"] = stats["nfev"] + extra.pop("nfev", 0)
    stats.update(extra)
    return LoopResult(t=s.t, y=s.y, ys=ys_out, status=s.status, stats=stats, dt=s.dt, rec_t=rec_t,
                      rec_dt=rec_dt, rec_y=rec_y, rec_dense=rec_dense, n_accept=s.n_accept,
                      events=s.events, rec_method=s.rec_method[:M_rec])


def _solver_init(solver, fb, t0, y0, f0, dt, rtol, atol):
    """The solver's state before the first step; a solver that needs the tolerances (a Newton
    iteration's stopping test, BDF's order selection) receives them through its optional
    ``bind_tolerances(state, rtol, atol)`` hook."""
    state = solver.init(fb, t0, y0, f0, dt)
    bind = getattr(solver, "bind_tolerances", None)
    return state if bind is None else bind(state, rtol, atol)


def _dense_degree(solver, fb, t0, y0, dt, f0, rtol, atol) -> int:
    def coefficients():
        step = solver.step(fb, t0, y0, f0, dt, _solver_init(solver, fb, t0, y0, f0, dt, rtol, atol))
        f1 = step.f1 if step.f1 is not None else f0
        return solver.dense(fb, t0, y0, dt, step.y1, f0, f1, step.info)

    return dense_degree(solver, coefficients)


def _put(buffer, index, value):
    """``buffer[index] = value`` as an in-place dynamic update (``index`` is clamped into range)."""
    index = jnp.asarray(index, jnp.int32)
    starts = (index,) + (jnp.zeros((), jnp.int32),) * (buffer.ndim - 1)
    return lax.dynamic_update_slice(buffer, jnp.asarray(value, buffer.dtype)[None], starts)
