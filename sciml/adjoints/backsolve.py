"""Backsolve: the continuous adjoint with the state re-integrated backward (O(1) memory).

The forward pass stores nothing but the final state. The backward pass integrates ``[y, a, gp]``
together from the end to the start in one solve, with the adjoint jumping at every save time (see
``_backward.py``). Memory does not grow with the number of steps; the price is that ``y`` is
recomputed by solving the ODE backward, which is unstable when the forward problem is stiff or
chaotic (the backward solve diverges from the forward trajectory) -- use ``Interpolating``,
``Quadrature`` or ``Direct`` there.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from sciml.adjoints._backward import (Backward, adjoint_field, augmented_tolerance, continuous_adjoint,
                                      pad_jumps, ravel_list, save_jumps, solve_backward,
                                      succeeded)
from sciml.adjoints._base import AbstractAdjoint, hoist_closure, no_events, no_step_records, split_differentiable
from sciml.solvers._loop import integrate


@dataclasses.dataclass(frozen=True)
class Backsolve(AbstractAdjoint):
    """Continuous adjoint solved backward together with the state: O(1) memory in the number of steps.

    Args:
        seminorm: measure the backward solve's error on the state and the adjoint only, not on the
            parameter-gradient channel (Kidger, Chen & Lyons 2021). Same gradient accuracy with
            fewer backward steps, most of all when there are many parameters.

    Unstable for stiff or chaotic problems (the state solved backward leaves the forward
    trajectory); not for `events` or `saveat="steps"`/`"dense"`.

    Example:
        >>> import jax, jax.numpy as jnp, sciml
        >>> def loss(k):
        ...     sol = sciml.solve(lambda t, y, k: -k * y, jnp.array([1.0]), (0.0, 1.0), args=k,
        ...                       adjoint=sciml.adjoints.Backsolve(), rtol=1e-10, atol=1e-10)
        ...     return sol.ys[-1, 0]
        >>> round(float(jax.grad(loss)(2.0)), 6)   # d/dk exp(-k) = -exp(-2)
        -0.135335
    """

    seminorm: bool = True

    def integrate(self, cfg, f, y0, s0, s1, args, s_ts, rtol, atol, dt0):
        no_events(cfg, f"{self!r}", "`sciml.adjoints.Direct()` or `sciml.adjoints.Forward()`")
        no_step_records(cfg, f"{self!r}")
        cfg, g, params = hoist_closure(cfg, f, s0, y0, args)
        return _RUN[self.seminorm](cfg, g, y0, s0, s1, params, s_ts, rtol, atol, dt0)


def _forward(cfg, g, problem):
    p = problem
    return integrate(cfg, g, p.y0, p.s0, p.s1, p.params, p.s_ts, p.rtol, p.atol, p.dt0), None


def _backward(seminorm, cfg, g, problem, res, saved, a_end, ct_ys):
    s_end, y_end, _ = res
    p_diff, p_join, _ = split_differentiable(problem.params)
    n = y_end.shape[0]
    dtype = y_end.dtype
    zeros_p, unravel = ravel_list([jnp.zeros_like(x) for x in p_diff], dtype)
    n_p = zeros_p.shape[0]
    tau, values, at_hi = save_jumps(problem.s_ts, ct_ys, problem.s0, s_end)
    z0 = jnp.concatenate([y_end.astype(dtype), (a_end + at_hi).astype(dtype), zeros_p])
    out = solve_backward(cfg, adjoint_field(g, p_join, n, dtype), z0, problem.s0, s_end, p_diff,
                         (tau, pad_jumps(values.astype(dtype), n, n_p)),
                         augmented_tolerance(problem.rtol, 2, n_p), augmented_tolerance(problem.atol, 2, n_p),
                         problem.dt0, norm_size=2 * n if seminorm else None)
    return Backward(a0=out.y[n:2 * n], grad_p=unravel(out.y[2 * n:]), ok=succeeded(out))


_RUN = {flag: continuous_adjoint(_forward, lambda *a, flag=flag: _backward(flag, *a)) for flag in (True, False)}
