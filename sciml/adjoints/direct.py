"""Direct: the exact gradient of the discrete solution that was computed.

The forward pass records every accepted step ``(t_k, dt_k, y_k)``; the backward pass walks them in
reverse with ``jax.vjp`` of each step (``_sweep.py``). Memory: O(steps x state). With
``checkpoints=k`` the forward pass keeps only ``k`` interval start states and the backward pass
re-solves one interval at a time (``_checkpoint.py``): memory O(k + max_steps / k) states for one
extra forward solve. A terminal event's time is differentiated by the implicit-function relation.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from sciml.adjoints import _checkpoint as C
from sciml.adjoints._base import (AbstractAdjoint, Problem, endpoint_cotangents, hoist_closure, split_differentiable,
                                  zero_cotangent)
from sciml.adjoints._sweep import Record, Terminal, reverse_sweep
from sciml.solvers._loop import LoopConfig, LoopResult, integrate
from sciml.solvers._status import Status


@dataclasses.dataclass(frozen=True)
class Direct(AbstractAdjoint):
    """Differentiate the discrete solver: reverse pass over the accepted steps.

    Exact for what was computed (the step-size controller's choices are held fixed), robust for stiff
    and chaotic problems, and differentiates through terminal events (the event time by the
    implicit-function theorem). Reverse mode only (``jax.grad``, ``jax.vjp``, ``jax.jacrev``): for
    ``jax.jvp``, ``jax.jacfwd`` or ``jax.hessian`` use ``sciml.adjoints.Forward()``.

    Args:
        checkpoints: ``None`` records every step (memory grows with ``max_steps``). An int ``k``
            splits ``t_span`` into ``k`` intervals, keeps their start states, and re-solves each during
            the backward pass (memory O(k + max_steps / k) states, one extra forward solve); each
            interval may take at most ``ceil(max_steps / k)`` steps.

    Example:
        >>> import jax, jax.numpy as jnp, sciml
        >>> def loss(k):
        ...     sol = sciml.solve(lambda t, y, k: -k * y, jnp.array([1.0]), (0.0, 1.0), args=k,
        ...                       adjoint=sciml.adjoints.Direct(), rtol=1e-10, atol=1e-10)
        ...     return sol.ys[-1, 0]
        >>> round(float(jax.grad(loss)(2.0)), 6)   # d/dk exp(-k) = -exp(-2)
        -0.135335
    """

    checkpoints: int | None = None

    def __post_init__(self):
        C.check_count(self.checkpoints, "Direct")

    def integrate(self, cfg, f, y0, s0, s1, args, s_ts, rtol, atol, dt0):
        if self.checkpoints is not None:
            C.check_config(cfg, f"{self!r}")
        cfg, g, params = hoist_closure(cfg, f, s0, y0, args)
        run = _direct if self.checkpoints is None else _checkpointed(self.checkpoints)
        return run(cfg, g, y0, s0, s1, params, s_ts, rtol, atol, dt0)

    def wrap_primal(self, primal, reference):
        # A checkpointed forward pass bounds each interval's steps; another backend's single solve would
        # not, so the same call could succeed without gradients and fail with them.
        return super().wrap_primal(primal, reference) if self.checkpoints is None else None


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _direct(cfg, g, y0, s0, s1, params, s_ts, rtol, atol, dt0):
    return integrate(cfg, g, y0, s0, s1, params, s_ts, rtol, atol, dt0)


def _fwd(cfg, g, y0, s0, s1, params, s_ts, rtol, atol, dt0):
    res = integrate(dataclasses.replace(cfg, record_steps=True), g, y0, s0, s1, params, s_ts, rtol, atol, dt0)
    ev = res.events
    rec = Record(res.rec_t, res.rec_dt, res.rec_y, res.n_accept, res.rec_method)
    residuals = (rec, res.t, res.y, res.ys, res.status,
                 (ev.count, ev.fired) if cfg.events is not None else (), y0, s0, s1, params, s_ts, rtol, atol, dt0)
    if not cfg.record_steps:
        res = res._replace(rec_t=res.rec_t[:1], rec_dt=res.rec_dt[:0], rec_y=jnp.zeros_like(res.rec_y[:1]),
                           rec_method=res.rec_method[:0])
    return res, residuals


def _bwd(cfg: LoopConfig, g, residuals, ct: LoopResult):
    (rec, s_end, y_end, ys, status, ev, y0, s0, s1, params, s_ts, rtol, atol, dt0) = residuals
    p_diff, p_join, p_cotangent = split_differentiable(params)
    lam, ct_t, terminal = ct.y, ct.t, None
    if cfg.events is not None and any(cfg.events.terminal):
        lam, ct_t, terminal = _terminal_cotangents(ct, ev, status, lam, ct_t)
    if cfg.record_steps:
        lam = lam + ct.rec_y[rec.n_steps]
    lam0, acc = reverse_sweep(cfg, g, rec, lam, p_diff, p_join, s_ts, ct.ys, s_end,
                              ct_rec_y=ct.rec_y if cfg.record_steps else None,
                              ct_rec_dense=ct.rec_dense if cfg.record_dense else None, terminal=terminal)
    stopped = terminal.hit if terminal is not None else False
    lam0, ct_s0, ct_s1, ct_ts = endpoint_cotangents(g, params, ct._replace(t=ct_t), s0, s1, y0, s_end, y_end,
                                                    ys, s_ts, lam0, stopped_early=stopped)
    return (lam0, ct_s0, ct_s1, p_cotangent(acc), ct_ts,
            zero_cotangent(rtol), zero_cotangent(atol), zero_cotangent(dt0))


def _terminal_cotangents(ct, ev, status, lam, ct_t):
    """Fold the cotangents of the fired event's recorded crossing into those of the end state/time."""
    count, fired = ev
    hit = status == Status.EVENT
    index = jnp.maximum(fired, 0)
    slot = count[index] - 1
    records = ct.events.t.shape[1]
    valid = hit & (slot >= 0) & (slot < records)
    slot = jnp.clip(slot, 0, records - 1)
    ct_t = ct_t + jnp.where(valid, ct.events.t[index, slot], 0).astype(ct_t.dtype)
    lam = lam + jnp.where(valid, ct.events.y[index, slot], 0).astype(lam.dtype)
    return lam, ct_t, Terminal(hit=hit, index=index, ct_t=jnp.where(hit, ct_t, 0))


_direct.defvjp(_fwd, _bwd)


@functools.lru_cache(maxsize=None)
def _checkpointed(k: int):
    """``Direct(checkpoints=k)``: the interval-by-interval forward pass and its replaying sweep."""

    @functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
    def run(cfg, g, y0, s0, s1, params, s_ts, rtol, atol, dt0):
        return C.primal(k, cfg, g, Problem(y0, s0, s1, params, s_ts, rtol, atol, dt0))

    def fwd(cfg, g, y0, s0, s1, params, s_ts, rtol, atol, dt0):
        p = Problem(y0, s0, s1, params, s_ts, rtol, atol, dt0)
        res, saved = C.forward(k, cfg, g, p)
        return res, (p, saved, res.t, res.y, res.ys)

    def bwd(cfg, g, residuals, ct):
        p, saved, s_end, y_end, ys = residuals
        p_diff, p_join, p_cotangent = split_differentiable(p.params)
        seg = dataclasses.replace(C.segment_config(cfg, k), record_steps=True)
        empty = jnp.zeros((0,), p.s0.dtype)

        def interval(carry, lo, hi, y_lo, dt_lo):
            lam, acc = carry
            r = integrate(seg, g, y_lo, lo, hi, p.params, empty, p.rtol, p.atol, dt_lo)
            lam, grad = reverse_sweep(cfg, g, Record(r.rec_t, r.rec_dt, r.rec_y, r.n_accept, r.rec_method), lam, p_diff,
                                      p_join, p.s_ts, ct.ys, hi)
            return lam, jax.tree_util.tree_map(jnp.add, acc, grad)

        acc0 = jax.tree_util.tree_map(jnp.zeros_like, p_diff)
        lam0, acc = C.reverse_intervals(saved, interval, (ct.y, acc0))
        lam0, ct_s0, ct_s1, ct_ts = endpoint_cotangents(g, p.params, ct, p.s0, p.s1, p.y0, s_end, y_end, ys,
                                                        p.s_ts, lam0)
        return (lam0, ct_s0, ct_s1, p_cotangent(acc), ct_ts,
                zero_cotangent(p.rtol), zero_cotangent(p.atol), zero_cotangent(p.dt0))

    run.defvjp(fwd, bwd)
    return run
