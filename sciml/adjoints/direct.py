"""Direct: the exact gradient of the discrete solution that was computed.

The forward pass records every accepted step ``(t_k, dt_k, y_k)``. The backward pass walks the steps
in reverse and pulls the cotangent through each step with ``jax.vjp`` of that step (re-running its
stages), adding the cotangents of the save points that fall inside it through the step's
interpolating polynomial. The step sizes are treated as fixed (the controller is not differentiated),
which is the gradient of the computed discrete map. Memory: O(steps x state).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax import lax

from sciml.adjoints._base import AbstractAdjoint, hoist_closure, split_differentiable, zero_cotangent
from sciml.solvers._loop import LoopConfig, LoopResult, integrate


@dataclasses.dataclass(frozen=True)
class Direct(AbstractAdjoint):
    """Differentiate the discrete solver: reverse pass over the accepted steps.

    Exact for what was computed (up to the step-size controller, which is held fixed), robust for
    stiff and chaotic problems. Memory grows with the number of steps (``max_steps`` bounds it).

    Example:
        >>> import jax, jax.numpy as jnp, sciml
        >>> def loss(k):
        ...     sol = sciml.solve(lambda t, y, k: -k * y, jnp.array([1.0]), (0.0, 1.0), args=k,
        ...                       adjoint=sciml.adjoints.Direct(), rtol=1e-10, atol=1e-10)
        ...     return sol.ys[-1, 0]
        >>> round(float(jax.grad(loss)(2.0)), 6)   # d/dk exp(-k) = -exp(-2)
        -0.135335
    """

    def integrate(self, cfg, f, y0, s0, s1, args, s_ts, rtol, atol, dt0):
        cfg, g, params = hoist_closure(cfg, f, s0, y0, args)
        return _direct(cfg, g, y0, s0, s1, params, s_ts, rtol, atol, dt0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _direct(cfg, g, y0, s0, s1, params, s_ts, rtol, atol, dt0):
    return integrate(cfg, g, y0, s0, s1, params, s_ts, rtol, atol, dt0)


def _fwd(cfg, g, y0, s0, s1, params, s_ts, rtol, atol, dt0):
    rec_cfg = dataclasses.replace(cfg, record_steps=True)
    res = integrate(rec_cfg, g, y0, s0, s1, params, s_ts, rtol, atol, dt0)
    residuals = (res.rec_t, res.rec_dt, res.rec_y, res.n_accept, res.t, res.y, res.ys, y0, s0, s1, params,
                 s_ts, rtol, atol, dt0)
    if not cfg.record_steps:
        res = res._replace(rec_t=res.rec_t[:1], rec_dt=res.rec_dt[:0], rec_y=res.rec_y[:1])
    return res, residuals


def _bwd(cfg: LoopConfig, g, residuals, ct: LoopResult):
    (rec_t, rec_dt, rec_y, n_steps, s_end, y_end, ys, y0, s0, s1, params, s_ts, rtol, atol, dt0) = residuals
    if cfg.events is not None and any(cfg.events.terminal):
        raise NotImplementedError(
            "`adjoint=Direct()` cannot yet differentiate through a terminal event (the event time "
            "depends on the parameters). Use non-terminal events, or stop at a fixed t1.")
    solver = cfg.solver
    p_diff, p_join, p_cotangent = split_differentiable(params)
    m = s_ts.shape[0]
    steps_mode = cfg.record_steps
    ct_rec_y = ct.rec_y if steps_mode else None
    ct_rec_dense = ct.rec_dense if cfg.record_dense else None
    ct_ys = ct.ys

    def step_map(k, y, pd, with_dense):
        p = p_join(pd)
        t, dt, t_new = rec_t[k], rec_dt[k], rec_t[k + 1]
        fb = lambda tt, yy: g(tt, yy, p)  # noqa: E731
        f0 = fb(t, y)
        st = solver.step(fb, t, y, f0, dt, solver.init(fb, t, y, f0, dt))
        if not with_dense:
            return st.y1, None
        f1 = st.f1 if st.f1 is not None else fb(t_new, st.y1)
        return st.y1, solver.dense(fb, t, y, dt, st.y1, f0, f1, st.info)

    degree = jax.eval_shape(lambda: step_map(0, y0, p_diff, True)[1]).shape[0] - 1
    n_reached = jnp.sum(s_ts <= s_end).astype(jnp.int32) if m else jnp.zeros((), jnp.int32)

    def body(carry):
        k, lam, acc, ptr = carry
        k = k - 1
        t_k, t_next, dt = rec_t[k], rec_t[k + 1], rec_dt[k]
        ct_coeffs = jnp.zeros((degree + 1, y0.shape[0]), y0.dtype)
        if ct_rec_dense is not None:
            ct_coeffs = ct_coeffs + ct_rec_dense[k]
        if m:
            def pending(c):
                return (c[0] >= 0) & (s_ts[jnp.maximum(c[0], 0)] > t_k)

            def take(c):
                j, lam_, cc = c
                ct_j = ct_ys[j]
                at_end = s_ts[j] == t_next
                theta = ((s_ts[j] - t_k) / dt).astype(y0.dtype)
                powers = theta ** jnp.arange(degree + 1, dtype=jnp.int32).astype(y0.dtype)
                cc = cc + jnp.where(at_end, 0, 1) * powers[:, None] * ct_j[None, :]
                lam_ = lam_ + jnp.where(at_end, 1, 0) * ct_j
                return j - 1, lam_, cc

            ptr, lam, ct_coeffs = lax.while_loop(pending, take, (ptr, lam, ct_coeffs))
        y_k = rec_y[k]
        use_dense = jnp.asarray(cfg.record_dense) | jnp.any(ct_coeffs != 0)

        def pull(with_dense):
            def run():
                _, vjp = jax.vjp(lambda y, pd: step_map(k, y, pd, with_dense), y_k, p_diff)
                ct_y, ct_p = vjp((lam, ct_coeffs if with_dense else None))
                return ct_y, ct_p
            return run

        ct_y, ct_p = lax.cond(use_dense, pull(True), pull(False))
        if ct_rec_y is not None:
            ct_y = ct_y + ct_rec_y[k]
        acc = jax.tree_util.tree_map(jnp.add, acc, ct_p)
        return k, ct_y, acc, ptr

    lam = ct.y
    if ct_rec_y is not None:
        lam = lam + ct_rec_y[n_steps]
    acc0 = jax.tree_util.tree_map(jnp.zeros_like, p_diff)
    _, lam0, acc, ptr = lax.while_loop(lambda c: c[0] > 0, body, (n_steps, lam, acc0, n_reached - 1))

    # Gradients with respect to the time endpoints and save times use the continuous relation
    # d y(t)/dt = f(t, y(t)) at the outputs.
    p = p_join(p_diff)
    f_at = lambda s, y: g(s, y, p)  # noqa: E731
    ct_s1 = _real_dot(ct.y, f_at(s_end, y_end)).astype(s1.dtype)
    ct_s0 = -_real_dot(lam0, f_at(s0, y0)).astype(s0.dtype)
    if m:
        # Save points at t0 are y0 itself.
        at_start = (jnp.arange(m) <= ptr)[:, None]
        lam0 = lam0 + jnp.sum(jnp.where(at_start, ct_ys, 0), axis=0)
        reached = jnp.arange(m) < n_reached
        f_ts = jax.vmap(f_at)(s_ts, jnp.where(reached[:, None], ys, y0[None, :]))
        ct_ts = jnp.where(reached, jax.vmap(_real_dot)(ct_ys, f_ts), 0).astype(s_ts.dtype)
    else:
        ct_ts = jnp.zeros_like(s_ts)
    return (lam0, ct_s0, ct_s1, p_cotangent(acc), ct_ts,
            zero_cotangent(rtol), zero_cotangent(atol), zero_cotangent(dt0))


def _real_dot(a, b):
    """The cotangent pairing JAX uses for a real input: Re(sum a*b), no conjugation."""
    return jnp.real(jnp.sum(a * b))


_direct.defvjp(_fwd, _bwd)
