"""The continuous adjoint, integrated backward in time by the same loop that solved forward.

For ``y' = g(s, y, p)`` and a loss ``L(y(s_1), ..., y(s_m), y(s_end))`` the adjoint ``a = dL/dy(s)``
solves ``a' = -a^T dg/dy`` backward from ``a(s_end) = dL/dy(s_end)``, jumping by ``dL/dy(s_j)`` at each
save time, and ``dL/dp = int a^T dg/dp ds``. The loop only integrates forward, so the backward problem
is run in ``tau = -s`` on an augmented flat state; the save-point jumps are the loop's ``jumps``
(steps land exactly on them), so the whole backward pass is ONE solve however many save points
there are. What the augmented state holds is each method's choice:

* Backsolve: ``[y, a, gp]`` (the state is re-integrated backward: O(1) memory);
* Interpolating: ``[a, gp]`` with ``y`` read from the forward dense output;
* Quadrature: ``[a]``; ``gp`` is computed afterwards by quadrature.

The augmented state has the state's dtype (``sciml.solve`` already widened it to whatever ``f``
returns for the parameters), so a float32 solve is differentiated in float32; each parameter's
gradient is cast to that parameter's dtype at the end. (Values ``f`` closes over that are not
parameters, such as the time direction in the time dtype, must not widen it.)

``continuous_adjoint`` builds the ``jax.custom_vjp`` shared by all three from a method's forward and
backward halves.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from sciml.adjoints._base import Problem, endpoint_cotangents, ravel_list, split_differentiable, zero_cotangent
from sciml.adjoints._controlled import Controlled
from sciml.solvers._loop import LoopConfig, LoopResult, integrate
from sciml.solvers._status import Status


class Backward(NamedTuple):
    """What a method's backward half returns: the adjoint at the start, the parameter gradient (a list
    of leaves like the differentiable params) and whether the backward solve(s) succeeded."""

    a0: jax.Array
    grad_p: list
    ok: jax.Array


def save_jumps(s_ts, ct_ys, lo, hi):
    """The save-point cotangents as backward-time jumps for the interval ``(lo, hi)``.

    Returns ``(tau, values, at_hi)``: jump times ``tau = -s`` ascending for save times strictly inside
    the interval (repeated times merged; unused slots at ``+inf``), their cotangents, and the summed
    cotangent of the save points exactly at ``hi`` (part of the initial adjoint).
    """
    m, n = ct_ys.shape
    if m == 0:
        return jnp.zeros((0,), s_ts.dtype), ct_ys, jnp.zeros((n,), ct_ys.dtype)
    inside = (s_ts > lo) & (s_ts < hi)
    at_hi = jnp.sum(jnp.where((s_ts == hi)[:, None], ct_ys, 0), axis=0)
    tau = jnp.where(inside, -s_ts, jnp.inf)
    order = jnp.argsort(tau)
    tau, vals = tau[order], jnp.where(inside[:, None], ct_ys, 0)[order]
    first = jnp.concatenate([jnp.ones((1,), bool), tau[1:] != tau[:-1]])
    group = jnp.cumsum(first) - 1
    merged_tau = jnp.full((m,), jnp.inf, tau.dtype).at[group].min(tau)
    merged_vals = jnp.zeros((m, n), ct_ys.dtype).at[group].add(vals)
    return merged_tau, merged_vals, at_hi


def augmented_tolerance(tol, blocks: int, extra: int):
    """Tolerance for ``blocks`` copies of the state followed by ``extra`` parameter-gradient entries."""
    if jnp.ndim(tol) == 0:
        return tol
    return jnp.concatenate([tol] * blocks + [jnp.full((extra,), jnp.max(tol), tol.dtype)])


def adjoint_field(g, p_join, n, dtype, y_of: Callable | None = None, with_params: bool = True):
    """The backward vector field in ``tau = -s`` on the flat augmented state.

    With ``y_of=None`` the state ``y`` is the first block of the augmented state (Backsolve);
    otherwise ``y = y_of(s)``. The field's ``args`` are the differentiable parameter leaves.
    """

    def field(tau, z, p_diff):
        s = -tau
        if y_of is None:
            y, a = z[:n], z[n:2 * n]
        else:
            y, a = y_of(s), z[:n]
        if with_params:
            fy, vjp = jax.vjp(lambda yy, pd: g(s, yy, p_join(pd)), y, p_diff)
            ay, ap = vjp(a.astype(fy.dtype))
            parts = [ay, ravel_list(ap, dtype)[0]]
        else:
            fy, vjp = jax.vjp(lambda yy: g(s, yy, p_join(p_diff)), y)
            parts = [vjp(a.astype(fy.dtype))[0]]
        if y_of is None:
            parts = [-fy] + parts
        return jnp.concatenate([x.astype(dtype) for x in parts])

    return field


def solve_backward(cfg: LoopConfig, field, z0, lo, hi, p_diff, jumps, rtol, atol, dt0, norm_size,
                   record_dense: bool = False, max_steps: int | None = None) -> LoopResult:
    """Integrate ``field`` from ``tau = -hi`` to ``-lo`` with the forward problem's solver, landing on
    and applying the ``jumps`` (times, values padded to the augmented state); the error is measured on
    the first ``norm_size`` components."""
    tau, values = jumps
    bcfg = LoopConfig(solver=Controlled(cfg.solver, norm_size=norm_size), controller=cfg.controller,
                      max_steps=max_steps or cfg.max_steps, adaptive=cfg.adaptive,
                      record_dense=record_dense, jumps=True)
    empty = jnp.zeros((0,), lo.dtype)
    return integrate(bcfg, field, z0, -hi, -lo, p_diff, empty, rtol, atol, dt0, tau, values)


def pad_jumps(values, before: int, after: int):
    """Jump values for the adjoint block placed after ``before`` and before ``after`` other entries."""
    k = values.shape[0]
    return jnp.concatenate([jnp.zeros((k, before), values.dtype), values,
                            jnp.zeros((k, after), values.dtype)], axis=1)


def trim_records(res: LoopResult, cfg: LoopConfig) -> LoopResult:
    """The records of a forward pass that stored more than ``cfg`` asked for, cut to what the
    primal (``integrate(cfg, ...)``) returns."""
    if cfg.record_steps or cfg.record_dense:
        return res
    return res._replace(rec_t=res.rec_t[:1], rec_dt=res.rec_dt[:0], rec_y=jnp.zeros_like(res.rec_y[:1]),
                        rec_dense=res.rec_dense[:0],
                        rec_method=None if res.rec_method is None else res.rec_method[:0])


def continuous_adjoint(forward, backward, primal=None):
    """The ``custom_vjp`` integrate of a continuous adjoint.

    ``forward(cfg, g, problem) -> (LoopResult, saved)`` runs the forward pass;
    ``backward(cfg, g, problem, res, saved, a_end, ct_ys) -> Backward`` integrates the adjoint from
    ``a_end`` at ``res.t`` back to ``s0`` (``ct_ys``: the save-point cotangents). ``primal(cfg, g,
    problem)`` is the undifferentiated solve (default: the loop).
    """

    @functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
    def run(cfg, g, y0, s0, s1, params, s_ts, rtol, atol, dt0):
        problem = Problem(y0, s0, s1, params, s_ts, rtol, atol, dt0)
        if primal is not None:
            return primal(cfg, g, problem)
        return integrate(cfg, g, y0, s0, s1, params, s_ts, rtol, atol, dt0)

    def fwd(cfg, g, y0, s0, s1, params, s_ts, rtol, atol, dt0):
        problem = Problem(y0, s0, s1, params, s_ts, rtol, atol, dt0)
        res, saved = forward(cfg, g, problem)
        return trim_records(res, cfg), (problem, res.t, res.y, res.ys, saved)

    def bwd(cfg, g, residuals, ct: LoopResult):
        problem, s_end, y_end, ys, saved = residuals
        p = problem.params
        _, _, p_cotangent = split_differentiable(p)
        res = (s_end, y_end, ys)
        out = backward(cfg, g, problem, res, saved, ct.y, ct.ys)
        lam0, ct_s0, ct_s1, ct_ts = endpoint_cotangents(g, p, ct, problem.s0, problem.s1, problem.y0, s_end,
                                                        y_end, ys, problem.s_ts, out.a0.astype(ct.y.dtype))
        nan = lambda x: jnp.where(out.ok, x, jnp.nan).astype(x.dtype)  # noqa: E731
        grads = [nan(x) for x in out.grad_p]
        return (nan(lam0), nan(ct_s0), nan(ct_s1), p_cotangent(grads), nan(ct_ts),
                zero_cotangent(problem.rtol), zero_cotangent(problem.atol), zero_cotangent(problem.dt0))

    run.defvjp(fwd, bwd)
    return run


def succeeded(res: LoopResult) -> jax.Array:
    return res.status == Status.SUCCESS
