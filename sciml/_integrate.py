"""The traced stages of the one solve pipeline: `Problem` -> the loop's form -> a backend -> `Solution`.

``integrate(options, problem)`` runs inside ``jit``. It flattens the state, maps a backward solve onto
forward time (`LoopProblem`), asks the kernel backend (`sciml.kernel`) whether it serves the solve and
otherwise runs the adjoint's XLA loop; the adjoint decides how derivatives are taken either way, and the
backend never looks at which adjoint it is.

Time and dtypes: the state is integrated in ``result_type(y0, f(t0, y0, args))``; the solver's clock
keeps the dtype of the times the user gave as arrays (`_validate.time_dtype`), and the vector field,
events and ``jac`` always see ``t`` in the state's real dtype, forward and in every gradient.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from sciml import _validate as V
from sciml._flat import flatten
from sciml._problem import SAVEAT_MODES, Options, Problem
from sciml.solvers._events import EventSet, event_value
from sciml.solvers._loop import LoopConfig, LoopResult
from sciml.solvers._solution import Solution, unflatten_batched
from sciml.solvers._status import Status


@dataclasses.dataclass(frozen=True)
class LoopProblem:
    """A problem in the loop's form: flat state, forward time ``s = direction * t``, ``args`` reduced
    to its array leaves (``f`` puts the static ones back)."""

    cfg: LoopConfig
    f: Callable                 # f(s, y_flat, args) -> dy/ds, flat, in the state dtype
    y0: jax.Array               # (n,) in the state dtype
    s0: jax.Array
    s1: jax.Array
    args: list
    s_ts: jax.Array             # (m,) save times in forward time (m = 0: none)
    rtol: jax.Array             # scalar or (n,), the state's real dtype
    atol: jax.Array
    dt0: jax.Array | None
    direction: jax.Array        # +1 or -1, in the clock's dtype
    unflatten: Callable         # flat state -> the structure of y0
    time_dtype: Any             # the clock's dtype
    f_user: Callable            # the user's f(t, y, args) with t in the state's real dtype, args as leaves
    saveat_ok: jax.Array        # whether the (possibly traced) save times are valid
    init: Any = None            # M y' = f with a singular M: the consistent initialisation (`_mass.Init`)


def integrate(options: Options, problem: Problem) -> Solution:
    """Solve ``problem`` (one trajectory) with ``options``; traced."""
    from sciml.kernel import integrate_or_none

    p = to_loop(options, problem)
    adjoint = options.adjoint.resolve(p.cfg, p.f, p.y0, p.args)
    res = integrate_or_none(options, p, adjoint)
    if res is None:
        res = adjoint.integrate(p.cfg, p.f, p.y0, p.s0, p.s1, p.args, p.s_ts, p.rtol, p.atol, p.dt0)
    return build_solution(options, p, problem.ts, res)


def to_loop(options: Options, problem: Problem) -> LoopProblem:
    """Flatten ``problem`` into the loop's form, checking what only tracing reveals (the output of ``f``)."""
    rebuild = options.static_args.rebuild
    args = problem.args
    y0_tree = jax.tree_util.tree_map(jnp.asarray, problem.y0)
    y0_flat, _ = flatten(y0_tree)
    user_f = options.f

    def f(t, y, dyn):
        return user_f(t, y, rebuild(dyn))

    # The state dtype is what f's output promotes it to (never lower than y0's).
    probe_real = jnp.zeros((), y0_flat.dtype).real.dtype
    out = V.probe_f(f, jnp.asarray(problem.t0, probe_real), y0_tree, args)
    out_dtypes = _output_dtypes(out, y0_flat)
    state_dtype = jnp.result_type(y0_flat.dtype, *out_dtypes)
    real_dtype = jnp.zeros((), state_dtype).real.dtype
    time_dtype = V.time_dtype(problem.t0, problem.t1, problem.ts, real_dtype)
    t0 = jnp.asarray(problem.t0, time_dtype)
    t1 = jnp.asarray(problem.t1, time_dtype)
    y0_flat = y0_flat.astype(state_dtype)
    _, unflatten = flatten(jax.tree_util.tree_map(lambda x: x.astype(state_dtype), y0_tree))

    def f_user(t, y, dyn):  # the field as the user wrote it, with t in the state's real dtype
        return f(jnp.asarray(t).astype(real_dtype), y, dyn)

    V.check_f_output(f_user, t0, unflatten(y0_flat), args, y0_tree, state_dtype)

    direction = jnp.where(t1 >= t0, 1, -1).astype(time_dtype)
    s_ts = (jnp.zeros((0,), time_dtype) if problem.ts is None
            else jnp.asarray(problem.ts).astype(time_dtype) * direction)

    def f_forward(s, y, a):
        flat, _ = flatten(f_user(s * direction, unflatten(y), a))
        return direction.astype(real_dtype) * flat.astype(state_dtype)

    if options.jac is not None:
        f_forward = _with_user_jacobian(options, f_forward, direction, unflatten, t0, y0_flat, args, real_dtype)
    elif options.jac_sparsity is not None:
        from sciml.solvers._linsolve import attach_jacobian
        f_forward = attach_jacobian(f_forward, options.jac_sparsity.jacobian(f_forward))
    rtol = V.tolerance_vector(problem.rtol, y0_tree, real_dtype, "rtol")
    atol = V.tolerance_vector(problem.atol, y0_tree, real_dtype, "atol")
    init = None
    if options.mass_matrix is not None:
        f_forward, y0_flat, init = _with_mass(options, f_forward, t0 * direction, y0_flat, args, rtol, atol)
    cfg = LoopConfig(solver=options.solver, controller=options.controller, max_steps=options.max_steps,
                     adaptive=options.adaptive, record_steps=options.mode in SAVEAT_MODES,
                     record_dense=options.mode == "dense",
                     events=_event_set(options, direction, unflatten, real_dtype))
    dt0 = None if problem.dt0 is None else jnp.abs(jnp.asarray(problem.dt0, time_dtype))
    return LoopProblem(
        cfg=cfg, f=f_forward, y0=y0_flat, s0=t0 * direction, s1=t1 * direction, args=args, s_ts=s_ts,
        rtol=rtol, atol=atol, dt0=dt0, direction=direction,
        unflatten=unflatten, time_dtype=time_dtype, f_user=f_user, saveat_ok=V.saveat_ok(s_ts, t0 * direction,
                                                                                            t1 * direction),
        init=init)


def _with_mass(options: Options, f_forward, s0, y0_flat, args, rtol, atol):
    """``M y' = f``: the field and initial state the loop gets, and the initialisation's outcome.

    A solver that takes ``M`` (``takes_mass_matrix``) carries it and gets ``f`` as it is, and a singular
    ``M`` gets a consistent ``y0`` (`_mass.consistent`); any other solver (checked: ``M`` non-singular)
    integrates ``y' = M^{-1} f`` with ``M`` factored once."""
    from sciml.solvers import _mass

    mass = options.mass_matrix
    mass.check_exact(y0_flat.dtype)
    if not getattr(options.solver, "takes_mass_matrix", False):
        lu = jax.scipy.linalg.lu_factor(mass.array(y0_flat.dtype))

        def f_solved(s, y, a):
            return jax.scipy.linalg.lu_solve(lu, f_forward(s, y, a))

        return f_solved, y0_flat, None
    if not mass.singular:
        return f_forward, y0_flat, None
    init = _mass.consistent(f_forward, s0, y0_flat, args, mass, options.init, rtol, atol)
    return f_forward, init.y0, init


def _output_dtypes(out, y0_flat) -> list:
    dtypes = []
    for leaf in jax.tree_util.tree_leaves(out):
        if not isinstance(leaf, (jax.Array, np.ndarray, np.generic)):
            raise TypeError(f"calling `f(t0, y0, args)` failed: it returned a {type(leaf).__name__} where "
                            f"dy/dt needs an array (the structure of `y0`).")
        dtype = leaf.dtype
        if not jnp.issubdtype(dtype, jnp.number) or jnp.issubdtype(dtype, jnp.bool_):
            raise TypeError(f"`f(t, y, args)` returned dtype {jnp.dtype(dtype).name}; dy/dt must be numeric.")
        if jnp.issubdtype(dtype, jnp.complexfloating) and not jnp.iscomplexobj(y0_flat):
            raise TypeError(
                f"`f(t, y, args)` returned {jnp.dtype(dtype).name} for a real state. To integrate in the "
                f"complex plane pass a complex `y0` (e.g. `y0.astype(jnp.complex128)`); otherwise take "
                f"the real part inside `f`.")
        dtypes.append(dtype)
    return dtypes


def _event_set(options: Options, direction, unflatten, real_dtype):
    if not options.events:
        return None
    conds, rebuild = tuple(e.cond for e in options.events), options.static_args.rebuild

    def values(s, y, a):
        t, tree, user_args = (s * direction).astype(real_dtype), unflatten(y), rebuild(a)
        return jnp.stack([event_value(c(t, tree, user_args), i) for i, c in enumerate(conds)])

    return EventSet(values=values, terminal=tuple(int(e.terminal) for e in options.events),
                    directions=tuple(e.direction for e in options.events), records=options.event_records,
                    at_start=tuple(e.at_start for e in options.events))


def _with_user_jacobian(options, f_forward, direction, unflatten, t0, y0_flat, args, real_dtype):
    """``f_forward`` differentiated in ``y`` by the user's ``jac`` (forward time, flat state)."""
    from sciml.solvers._linsolve import attach_jacobian

    jac, rebuild = options.jac, options.static_args.rebuild
    n, dtype = y0_flat.shape[0], y0_flat.dtype

    def jac_forward(s, y, a):
        t = (s * direction).astype(real_dtype)
        return direction.astype(dtype) * jnp.asarray(jac(t, unflatten(y), rebuild(a)))

    probe = jac_forward(t0 * direction, y0_flat, args)
    if probe.shape != (n, n):
        raise ValueError(f"`jac(t, y, args)` must return the ({n}, {n}) Jacobian df/dy for a state of length {n}; "
                         f"got shape {probe.shape}.")
    if jnp.result_type(probe.dtype, dtype) != dtype:
        raise TypeError(f"`jac(t, y, args)` returns {probe.dtype.name} for a {dtype.name} state; make it keep the "
                        f"state's dtype.")
    return attach_jacobian(f_forward, lambda s, y, a: jac_forward(s, y, a).astype(dtype))


def build_solution(options: Options, p: LoopProblem, ts_user, res: LoopResult) -> Solution:
    """The user-facing `Solution` of a loop (or kernel) result, in the user's time and structure."""
    d, unflatten, mode = p.direction, p.unflatten, options.mode
    status = jnp.where(p.saveat_ok, res.status, Status.BAD_SAVEAT).astype(jnp.int32)
    stats = res.stats
    if p.init is not None:   # a DAE's initialisation: its failure is the status; what it did, in stats
        bad = Status.INIT_FAILED if options.init == "solve" else Status.INCONSISTENT_INIT
        status = jnp.where(p.init.converged, status, bad).astype(jnp.int32)
        stats = dict(stats, init_adjusted=p.init.adjusted, init_residual=p.init.residual)
    t_final = (res.t * d).astype(p.time_dtype)
    y_final = unflatten(res.y)
    if mode == "final":
        ts = t_final[None]
        ys = jax.tree_util.tree_map(lambda x: x[None], y_final)
    elif mode == "ts":
        ts = ts_user
        # Invalid save times give NaN, never values at the wrong times.
        ys = unflatten_batched(unflatten, jnp.where(p.saveat_ok, res.ys, jnp.nan), 1)
    else:
        ts = res.rec_t * d
        ys = unflatten_batched(unflatten, res.rec_y, 1)
    ev = res.events
    has_events = p.cfg.events is not None
    dense = mode == "dense"
    return Solution(
        ts=ts, ys=ys, t_final=t_final, y_final=y_final, status=status, stats=stats,
        event_t=(ev.t[:, 0] * d) if has_events else None,
        event_ts=(ev.t * d) if has_events else None,
        event_ys=unflatten_batched(unflatten, ev.y, 2) if has_events else None,
        event_count=ev.count if has_events else None,
        event=ev.fired if has_events else jnp.asarray(-1, jnp.int32),
        _dense_t=res.rec_t if dense else None, _dense_dt=res.rec_dt if dense else None,
        _dense_coeffs=res.rec_dense if dense else None, _n_steps=res.n_accept,
        _time_sign=d, _last_dt=res.dt, _unflatten=unflatten, _max_steps=options.max_steps,
        _solver_stiff=bool(getattr(options.solver, "stiff", False)))
