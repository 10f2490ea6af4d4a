"""Quadrature: the adjoint backward on stored dense output, the parameter gradient by quadrature.

The forward pass records its dense output. The backward pass integrates only the adjoint ``a``
(``n`` components, however many parameters there are) and records its dense output too. Then
``dL/dp = int a(s)^T dg/dp(s, y(s)) ds`` is summed step by step over the backward steps with
Gauss-Legendre nodes, the vector-Jacobian products at a step's nodes batched into one call. When the
parameters far outnumber the state (neural ODEs) this avoids carrying ``p`` extra components through
every stage of the backward solve; for stiff problems it keeps the backward system ``n``-dimensional.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from sciml.adjoints._backward import (Backward, adjoint_field, continuous_adjoint, ravel_list,
                                      save_jumps, solve_backward, succeeded)
from sciml.adjoints._base import AbstractAdjoint, hoist_closure, no_events, no_step_records, split_differentiable
from sciml.adjoints.interpolating import _forward as _forward_dense
from sciml.solvers._base import evaluate_dense, evaluate_polynomial


@dataclasses.dataclass(frozen=True)
class Quadrature(AbstractAdjoint):
    """Adjoint on the stored dense output; parameter gradient by Gauss-Legendre quadrature.

    Args:
        nodes: Gauss-Legendre nodes per backward step (``None``: enough to match the solver's order,
            ``ceil((order + 1) / 2)``).

    Fast when there are many more parameters than states; memory O(steps) (both dense outputs are
    stored). Not for `events` or `saveat="steps"`/`"dense"`.

    Example:
        >>> import jax, jax.numpy as jnp, sciml
        >>> def loss(k):
        ...     sol = sciml.solve(lambda t, y, k: -k * y, jnp.array([1.0]), (0.0, 1.0), args=k,
        ...                       adjoint=sciml.adjoints.Quadrature(), rtol=1e-10, atol=1e-10)
        ...     return sol.ys[-1, 0]
        >>> round(float(jax.grad(loss)(2.0)), 6)   # d/dk exp(-k) = -exp(-2)
        -0.135335
    """

    nodes: int | None = None

    def __post_init__(self):
        if self.nodes is not None and (isinstance(self.nodes, bool) or not isinstance(self.nodes, int)
                                       or self.nodes < 1):
            raise ValueError(f"`Quadrature(nodes=...)` must be None or a positive int; got {self.nodes!r}.")

    def integrate(self, cfg, f, y0, s0, s1, args, s_ts, rtol, atol, dt0):
        no_events(cfg, f"{self!r}")
        no_step_records(cfg, f"{self!r}")
        cfg, g, params = hoist_closure(cfg, f, s0, y0, args)
        q = self.nodes or -(-(cfg.solver.order + 1) // 2)
        return _RUN[q](cfg, g, y0, s0, s1, params, s_ts, rtol, atol, dt0)


def _backward(q, cfg, g, problem, res, rec, a_end, ct_ys):
    s_end, y_end, _ = res
    p_diff, p_join, _ = split_differentiable(problem.params)
    dtype = y_end.dtype
    _, unravel = ravel_list([jnp.zeros_like(x) for x in p_diff], dtype)
    tau, values, at_hi = save_jumps(problem.s_ts, ct_ys, problem.s0, s_end)
    field = adjoint_field(g, p_join, y_end.shape[0], a_end.dtype, y_of=lambda s: evaluate_dense(*rec, s),
                          with_params=False)
    out = solve_backward(cfg, field, a_end + at_hi, problem.s0, s_end, p_diff, (tau, values), problem.rtol,
                         problem.atol, problem.dt0, norm_size=None, record_dense=True)

    x, w = np.polynomial.legendre.leggauss(q)
    nodes, weights = (x + 1) / 2, w / 2

    def vjp_p(s, y, a):
        _, vjp = jax.vjp(lambda pd: g(s, y, p_join(pd)), p_diff)
        return ravel_list(vjp(a)[0], dtype)[0]

    def step(k, acc):
        tau_k, h = out.rec_t[k], out.rec_dt[k]
        s_q = -(tau_k + jnp.asarray(nodes, tau_k.dtype) * h)
        a_q = evaluate_polynomial(out.rec_dense[k], nodes)
        y_q = evaluate_dense(*rec, s_q)
        terms = jax.vmap(vjp_p)(s_q, y_q, a_q.astype(y_q.dtype))
        return acc + h.astype(dtype) * (jnp.asarray(weights, dtype) @ terms)

    gp0 = ravel_list([jnp.zeros_like(x) for x in p_diff], dtype)[0]
    gp = lax.fori_loop(0, out.n_accept, step, gp0)
    return Backward(a0=out.y, grad_p=unravel(gp), ok=succeeded(out))


class _Runs(dict):
    def __missing__(self, q):
        self[q] = continuous_adjoint(_forward_dense, lambda *a: _backward(q, *a))
        return self[q]


_RUN = _Runs()
