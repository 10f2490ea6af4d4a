"""The discrete reverse sweep of ``Direct``: pull a cotangent back through recorded steps.

Walks the accepted steps ``k = n-1, ..., 0`` of a record ``(rec_t, rec_dt, rec_y)`` and pulls the
cotangent of each step's end state back to its start with ``jax.vjp`` of that step (re-running its
stages), adding the cotangents of the save points inside the step through the step's interpolating
polynomial. Step sizes are data (the controller is not differentiated): this is the exact gradient of
the discrete map that was computed.

A terminal event ends the last step early, at ``theta* dt`` where ``G(theta) = cond(t + theta dt,
P(theta))`` vanishes on the step polynomial ``P``. Its derivative comes from the implicit-function
relation ``d theta* = -dG / G_theta``, which the last step's map encodes as
``theta = theta* - (G - stop_gradient(G)) / stop_gradient(G_theta)``: the value is ``theta*`` and the
vjp is the implicit one.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from sciml.solvers._base import dense_degree, evaluate_polynomial


#: up to this many save points, each step masks all of them in straight-line code; beyond, a loop
#: walks only those inside the step
_MASKED_SAVES = 256


class Record(NamedTuple):
    rec_t: jax.Array       # (M + 1,) step start times (then the end)
    rec_dt: jax.Array      # (M,) step sizes taken
    rec_y: jax.Array       # (M + 1, n) state at each step start (then the end)
    n_steps: jax.Array     # accepted steps in the record
    rec_method: Any = None  # (M,) which method took each step, for a solver with `method_index`; else empty


class Terminal(NamedTuple):
    """The terminal event that ended the last step (``hit`` may be traced False)."""

    hit: jax.Array
    index: jax.Array       # which event fired
    ct_t: jax.Array        # cotangent of the end time


def reverse_sweep(cfg, g, rec: Record, lam, p_diff, p_join, s_ts, ct_ys, hi, ct_rec_y=None, ct_rec_dense=None,
                  terminal: Terminal | None = None):
    """Pull ``lam`` (cotangent of the record's end state) back to its start.

    Save points in ``(rec_t[0], hi]`` take their cotangents ``ct_ys`` on the way. ``ct_rec_y`` and
    ``ct_rec_dense`` are cotangents of the recorded states and polynomials themselves
    (``saveat="steps"``/``"dense"``). Returns ``(lam0, grad)`` with ``grad`` like ``p_diff``.
    """
    solver = cfg.solver
    rec_t, rec_dt, rec_y, n_steps, rec_method = rec
    replay = rec_method is not None and rec_method.shape[0] > 0
    y_ref = rec_y[0]
    m = s_ts.shape[0]

    def step_map(k, y, pd, with_dense, event=False):
        p = p_join(pd)
        t, dt = rec_t[k], rec_dt[k]
        t_new = t + dt if event else rec_t[k + 1]
        fb = lambda tt, yy: g(tt, yy, p)  # noqa: E731
        f0 = fb(t, y)
        state = solver.init(fb, t, y, f0, dt)
        if replay:  # the method that took this step (AutoSwitch), not the one a fresh state would pick
            state = solver.with_method_index(state, rec_method[k])
        st = solver.step(fb, t, y, f0, dt, state)
        y1, f1, info = st.y1, st.f1, st.info
        if not (with_dense or event):
            return y1, None, jnp.zeros_like(t)
        f1 = f1 if f1 is not None else fb(t_new, y1)
        coeffs = solver.dense(fb, t, y, dt, y1, f0, f1, info)
        if not event:
            return y1, coeffs, jnp.zeros_like(t)
        theta = _implicit_theta(cfg, terminal.index, p, t, dt, coeffs, (rec_t[k + 1] - t) / dt)
        return evaluate_polynomial(coeffs, theta), coeffs if with_dense else None, t + theta * dt

    degree = dense_degree(solver, lambda: step_map(0, y_ref, p_diff, True)[1])
    ptr0 = (jnp.sum(s_ts <= hi).astype(jnp.int32) - 1) if m else jnp.zeros((), jnp.int32)

    def take_save_points(ptr, lam, k):
        t_k, t_next, dt = rec_t[k], rec_t[k + 1], rec_dt[k]
        coeffs = jnp.zeros((degree + 1, y_ref.shape[0]), y_ref.dtype)
        if ct_rec_dense is not None:
            coeffs = coeffs + ct_rec_dense[k]
        if not m:
            return ptr, lam, coeffs
        if m <= _MASKED_SAVES:
            # Straight-line: every save point, masked to those inside this step (no nested loop).
            inside = (s_ts > t_k) & (s_ts <= t_next) & (s_ts <= hi)
            at_end = inside & (s_ts == t_next)
            theta = ((s_ts - t_k) / dt).astype(y_ref.dtype)
            powers = jnp.where((inside & ~at_end)[:, None], theta[:, None] ** jnp.arange(degree + 1), 0)
            lam = lam + jnp.where(at_end[:, None], ct_ys, 0).sum(axis=0)
            return ptr, lam, coeffs + powers.T.astype(ct_ys.dtype) @ ct_ys

        def pending(c):
            return (c[0] >= 0) & (s_ts[jnp.maximum(c[0], 0)] > t_k)

        def take(c):
            j, lam_, cc = c
            at_end = s_ts[j] == t_next
            theta = ((s_ts[j] - t_k) / dt).astype(y_ref.dtype)
            powers = theta ** jnp.arange(degree + 1).astype(y_ref.dtype)
            cc = cc + jnp.where(at_end, jnp.zeros_like(powers), powers)[:, None] * ct_ys[j][None, :]
            return j - 1, lam_ + jnp.where(at_end, ct_ys[j], jnp.zeros_like(ct_ys[j])), cc

        return lax.while_loop(pending, take, (ptr, lam, coeffs))

    def pull(k, lam, coeffs, event):
        def run(with_dense):
            def go():
                _, vjp = jax.vjp(lambda y, pd: step_map(k, y, pd, with_dense, event), rec_y[k], p_diff)
                ct_t = terminal.ct_t.astype(rec_t.dtype) if event else jnp.zeros((), rec_t.dtype)
                return vjp((lam, coeffs if with_dense else None, ct_t))
            return go

        if solver.fevals_dense == 0:
            # The polynomial costs no evaluations of f: one code path (half the compile) is cheaper
            # than a branch that skips it on steps without save points.
            return run(True)()
        use_dense = jnp.asarray(cfg.record_dense) | jnp.any(coeffs != 0)
        return lax.cond(use_dense, run(True), run(False))

    def body(carry):
        k, lam, acc, ptr = carry
        k = k - 1
        ptr, lam, coeffs = take_save_points(ptr, lam, k)
        if terminal is None:
            ct_y, ct_p = pull(k, lam, coeffs, False)
        else:
            last = terminal.hit & (k == n_steps - 1)
            ct_y, ct_p = lax.cond(last, lambda: pull(k, lam, coeffs, True), lambda: pull(k, lam, coeffs, False))
        if ct_rec_y is not None:
            ct_y = ct_y + ct_rec_y[k]
        return k, ct_y, jax.tree_util.tree_map(jnp.add, acc, ct_p), ptr

    acc0 = jax.tree_util.tree_map(jnp.zeros_like, p_diff)
    _, lam0, acc, _ = lax.while_loop(lambda c: c[0] > 0, body, (n_steps, lam, acc0, ptr0))
    return lam0, acc


def _implicit_theta(cfg, index, p, t, dt, coeffs, theta_star):
    """``theta*`` with the implicit-function derivative of ``cond(t + theta dt, P(theta)) = 0``."""
    theta_star = lax.stop_gradient(theta_star)

    def G(theta):
        return cfg.events.values(t + theta.astype(t.dtype) * dt, evaluate_polynomial(coeffs, theta), p)[index]

    g0, g_theta = jax.jvp(G, (theta_star,), (jnp.ones_like(theta_star),))
    g_theta = lax.stop_gradient(g_theta)
    return theta_star - (g0 - lax.stop_gradient(g0)) / jnp.where(g_theta == 0, 1, g_theta)
