"""Interpolating: the continuous adjoint with the forward state read from stored dense output.

The forward pass records every step's interpolating polynomial (or, with ``checkpoints=k``, only the
state at ``k + 1`` times; each interval is re-solved with its dense output during the backward pass).
The backward pass integrates the adjoint and the parameter gradient ``[a, gp]`` in one solve per
interval, reading ``y(s)`` from the polynomials: nothing is integrated backward that was stable only
forward, so it suits stiff problems.
"""

from __future__ import annotations

import dataclasses
import functools

import jax.numpy as jnp

from sciml.adjoints import _checkpoint as C
from sciml.adjoints._backward import (Backward, adjoint_field, augmented_tolerance, continuous_adjoint,
                                      pad_jumps, ravel_list, save_jumps, solve_backward,
                                      succeeded)
from sciml.adjoints._base import AbstractAdjoint, hoist_closure, no_events, no_step_records, split_differentiable
from sciml.solvers._base import evaluate_dense
from sciml.solvers._loop import integrate


@dataclasses.dataclass(frozen=True)
class Interpolating(AbstractAdjoint):
    """Continuous adjoint on the stored forward dense output: stable for stiff problems.

    Args:
        checkpoints: ``None`` stores the dense output of every step (memory O(steps)). An int ``k``
            stores the state at ``k + 1`` evenly spaced times and re-solves each interval during the
            backward pass (memory O(k + max_steps / k)); each interval may then take at most
            ``ceil(max_steps / k)`` steps.

    The backward error control uses the adjoint only (the seminorm of Kidger et al. 2021). Not for
    `events` or `saveat="steps"`/`"dense"`.

    Example:
        >>> import jax, jax.numpy as jnp, sciml
        >>> def loss(k):
        ...     sol = sciml.solve(lambda t, y, k: -k * y, jnp.array([1.0]), (0.0, 1.0), args=k,
        ...                       adjoint=sciml.adjoints.Interpolating(), rtol=1e-10, atol=1e-10)
        ...     return sol.ys[-1, 0]
        >>> round(float(jax.grad(loss)(2.0)), 6)   # d/dk exp(-k) = -exp(-2)
        -0.135335
    """

    checkpoints: int | None = None

    def __post_init__(self):
        C.check_count(self.checkpoints, "Interpolating")

    def integrate(self, cfg, f, y0, s0, s1, args, s_ts, rtol, atol, dt0):
        no_events(cfg, f"{self!r}")
        no_step_records(cfg, f"{self!r}")
        cfg, g, params = hoist_closure(cfg, f, s0, y0, args)
        if self.checkpoints is None:
            return _RUN(cfg, g, y0, s0, s1, params, s_ts, rtol, atol, dt0)
        C.check_config(cfg, f"{self!r}")
        return _checkpointed(self.checkpoints)(cfg, g, y0, s0, s1, params, s_ts, rtol, atol, dt0)


def backward_interval(cfg, g, problem, rec, a, gp, lo, hi, ct_ys):
    """Integrate ``[a, gp]`` from ``hi`` back to ``lo`` on the dense output ``rec`` of that interval
    (``(rec_t, rec_dt, rec_dense, n_steps)``); returns ``(a, gp, ok)`` at ``lo``."""
    p_diff, p_join, _ = split_differentiable(problem.params)
    n = a.shape[0]
    dtype = gp.dtype
    n_p = gp.shape[0]
    y_of = lambda s: evaluate_dense(*rec, s)  # noqa: E731
    tau, values, at_hi = save_jumps(problem.s_ts, ct_ys, lo, hi)
    z0 = jnp.concatenate([(a + at_hi).astype(dtype), gp])
    out = solve_backward(cfg, adjoint_field(g, p_join, n, dtype, y_of=y_of), z0, lo, hi, p_diff,
                         (tau, pad_jumps(values.astype(dtype), 0, n_p)),
                         augmented_tolerance(problem.rtol, 1, n_p), augmented_tolerance(problem.atol, 1, n_p),
                         problem.dt0, norm_size=n)
    return out.y[:n], out.y[n:], succeeded(out)


def _start(problem, y_end):
    p_diff, _, _ = split_differentiable(problem.params)
    dtype = y_end.dtype
    zeros_p, unravel = ravel_list([jnp.zeros_like(x) for x in p_diff], dtype)
    return zeros_p, unravel


def _forward(cfg, g, problem):
    p = problem
    res = integrate(dataclasses.replace(cfg, record_dense=True), g, p.y0, p.s0, p.s1, p.params, p.s_ts,
                    p.rtol, p.atol, p.dt0)
    return res, (res.rec_t, res.rec_dt, res.rec_dense, res.n_accept)


def _backward(cfg, g, problem, res, rec, a_end, ct_ys):
    s_end, y_end, _ = res
    gp0, unravel = _start(problem, y_end)
    a, gp, ok = backward_interval(cfg, g, problem, rec, a_end.astype(gp0.dtype), gp0, problem.s0, s_end, ct_ys)
    return Backward(a0=a, grad_p=unravel(gp), ok=ok)


def _backward_checkpointed(k, cfg, g, problem, res, saved, a_end, ct_ys):
    _, y_end, _ = res
    gp0, unravel = _start(problem, y_end)
    seg = C.segment_config(cfg, k)

    def interval(carry, lo, hi, y_lo, dt_lo):
        a, gp, ok = carry
        r = integrate(dataclasses.replace(seg, record_dense=True), g, y_lo, lo, hi, problem.params,
                      jnp.zeros((0,), lo.dtype), problem.rtol, problem.atol, dt_lo)
        rec = (r.rec_t, r.rec_dt, r.rec_dense, r.n_accept)
        a, gp, ok_i = backward_interval(cfg, g, problem, rec, a, gp, lo, hi, ct_ys)
        return a, gp, ok & ok_i

    a, gp, ok = C.reverse_intervals(saved, interval, (a_end.astype(gp0.dtype), gp0, jnp.asarray(True)))
    return Backward(a0=a, grad_p=unravel(gp), ok=ok)


_RUN = continuous_adjoint(_forward, _backward)


@functools.lru_cache(maxsize=None)
def _checkpointed(k: int):
    return continuous_adjoint(functools.partial(C.forward, k), functools.partial(_backward_checkpointed, k),
                              primal=functools.partial(C.primal, k))
