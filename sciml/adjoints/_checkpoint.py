"""Checkpointed solves: the forward pass as ``k`` intervals whose start states are kept.

``Direct(checkpoints=k)`` and ``Interpolating(checkpoints=k)`` split ``[s0, s1]`` into ``k`` equal
intervals. The forward pass solves them one after another (a ``lax.scan`` over intervals, the step
size carried across) and keeps only each interval's start state and step size; the backward pass
re-solves one interval at a time, recording what it needs, and walks the intervals in reverse.
Replaying an interval from the same state and step size repeats the forward computation exactly, so
the gradient is that of the solution the forward pass computed. Each interval may take at most
``ceil(max_steps / k)`` steps, which bounds the recording: memory O(k + max_steps / k) states.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from jax import lax

from sciml.adjoints._base import resolved_dt0
from sciml.solvers._loop import LoopResult, integrate
from sciml.solvers._status import Status


def check_count(k, name: str):
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise ValueError(f"`{name}(checkpoints=...)` must be None (store every step) or a positive int; "
                         f"got {k!r}. Use e.g. `checkpoints=32`.")


def check_config(cfg, name: str):
    if cfg.events is not None or cfg.record_steps or cfg.record_dense:
        raise NotImplementedError(
            f"`{name}` with `checkpoints` supports `saveat=None` or an array of times and no `events`. Use "
            f"`{name.split('(')[0]}()` without checkpoints for `events` or `saveat=\"steps\"`/`\"dense\"`.")


def segment_config(cfg, k: int):
    """The loop options of one interval: at most ``ceil(max_steps / k)`` steps."""
    return dataclasses.replace(cfg, max_steps=max(1, math.ceil(cfg.max_steps / k)))


def interval_bounds(s0, s1, k: int):
    frac = jnp.arange(k + 1, dtype=s0.dtype) / k
    return jnp.concatenate([s0 + (s1 - s0) * frac[:-1], s1[None]])


def forward(k: int, cfg, g, p):
    """Solve interval by interval. Returns ``(LoopResult, saved)`` with ``saved = (bounds, y_start,
    dt_start)`` for the ``k`` intervals."""
    seg = segment_config(cfg, k)
    bounds = interval_bounds(p.s0, p.s1, k)
    dt0, extra_nfev = resolved_dt0(cfg, g, p.y0, p.s0, p.s1, p.params, p.rtol, p.atol, p.dt0)
    first = jnp.arange(k) == 0

    def body(carry, x):
        y, dt, status, t_stop, ys, stats = carry
        lo, hi, is_first = x
        r = integrate(seg, g, y, lo, hi, p.params, p.s_ts, p.rtol, p.atol, dt)
        going = status == Status.SUCCESS
        take = ((p.s_ts > lo) | is_first) & (p.s_ts <= hi) & going
        ys = jnp.where(take[:, None], r.ys, ys)
        stats = jax.tree_util.tree_map(lambda a, b: a + jnp.where(going, b, 0), stats, r.stats)
        carry = (jnp.where(going, r.y, y), jnp.where(going, r.dt, dt), jnp.where(going, r.status, status),
                 jnp.where(going, r.t, t_stop), ys, stats)
        return carry, ((y, dt), (r.rec_t, r.rec_dt, r.rec_y, r.rec_dense))

    stats0 = jax.eval_shape(lambda: integrate(seg, g, p.y0, p.s0, p.s1, p.params, p.s_ts, p.rtol, p.atol,
                                              dt0).stats)
    stats0 = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), stats0)
    ys0 = jnp.full((p.s_ts.shape[0], p.y0.shape[0]), jnp.nan, p.y0.dtype)
    init = (p.y0, dt0, jnp.asarray(Status.SUCCESS, jnp.int32), p.s0, ys0, stats0)
    (y, dt, status, t_stop, ys, stats), ((y_start, dt_start), recs) = lax.scan(
        body, init, (bounds[:-1], bounds[1:], first))
    stats = dict(stats, nfev=stats["nfev"] + extra_nfev)
    rec_t, rec_dt, rec_y, rec_dense = (r[0] for r in recs)
    res = LoopResult(t=t_stop, y=y, ys=ys, status=status, stats=stats, dt=dt, rec_t=rec_t, rec_dt=rec_dt,
                     rec_y=rec_y, rec_dense=rec_dense, n_accept=stats["naccept"], events=())
    return res, (bounds, y_start, dt_start)


def primal(k: int, cfg, g, p) -> LoopResult:
    return forward(k, cfg, g, p)[0]


def reverse_intervals(saved, body, carry):
    """Fold ``body(carry, lo, hi, y_lo, dt_lo) -> carry`` over the intervals from last to first."""
    bounds, y_start, dt_start = saved

    def step(c, x):
        lo, hi, y_lo, dt_lo = x
        return body(c, lo, hi, y_lo, dt_lo), None

    carry, _ = lax.scan(step, carry, (bounds[:-1], bounds[1:], y_start, dt_start), reverse=True)
    return carry
