"""Forward: forward sensitivities, propagated with jvp through the solve.

The derivative of every output with respect to every input, ``J``, is computed from the primal
inputs by one solve with ``D`` tangent directions at once (``vmap`` of ``jax.jvp`` through the loop;
``D`` = state size + 2 time endpoints + number of parameters). The rule's tangent output is the
linear map ``J @ t``, so ``jax.jvp`` and ``jax.jacfwd`` use it directly and ``jax.grad``/``jax.vjp``
transpose it. Cheap when ``n + p`` is small; the cost grows with ``D`` whatever is asked.
Derivatives with respect to save times use the continuous relation ``dy(t)/dt = f(t, y(t))``. The
step-size controller's decisions are held as data (its error norm is not differentiated).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from sciml.adjoints._base import AbstractAdjoint, hoist_closure, resolved_dt0, split_differentiable
from sciml.adjoints._controlled import Controlled
from sciml.solvers._loop import integrate


@dataclasses.dataclass(frozen=True)
class Forward(AbstractAdjoint):
    """Forward sensitivities: full Jacobians cheaply when state + parameters are few.

    Supports ``jax.jvp``, ``jax.jacfwd``, ``jax.grad`` and forward-over-reverse higher derivatives
    (``jax.hessian``, ``jax.jacfwd(jax.grad(...))``), events and every ``saveat``.

    Example:
        >>> import jax, jax.numpy as jnp, sciml
        >>> def y1(k):
        ...     sol = sciml.solve(lambda t, y, k: -k * y, jnp.array([1.0]), (0.0, 1.0), args=k,
        ...                       adjoint=sciml.adjoints.Forward(), rtol=1e-10, atol=1e-10)
        ...     return sol.ys[-1, 0]
        >>> round(float(jax.jacfwd(y1)(2.0)), 6)   # d/dk exp(-k) = -exp(-2)
        -0.135335
    """

    def integrate(self, cfg, f, y0, s0, s1, args, s_ts, rtol, atol, dt0):
        cfg, g, params = hoist_closure(cfg, f, s0, y0, args)
        cfg = dataclasses.replace(cfg, solver=Controlled(cfg.solver, frozen=True))
        dt0, extra = resolved_dt0(cfg, g, y0, s0, s1, params, rtol, atol, dt0)
        res = _forward(cfg, g, y0, s0, s1, params, s_ts, rtol, atol, dt0)
        return res._replace(stats=dict(res.stats, nfev=res.stats["nfev"] + extra))

    def wrap_primal(self, primal, reference):
        solve = jax.custom_jvp(primal)
        solve.defjvp(lambda primals, tangents: jax.jvp(reference, primals, tangents))
        return solve


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _forward(cfg, g, y0, s0, s1, params, s_ts, rtol, atol, dt0):
    return integrate(cfg, g, y0, s0, s1, params, s_ts, rtol, atol, dt0)


@_forward.defjvp
def _jvp(cfg, g, primals, tangents):
    y0, s0, s1, params, s_ts, rtol, atol, dt0 = primals
    p_diff, p_join, _ = split_differentiable(params)
    inputs = [y0, s0, s1] + list(p_diff)

    def solve(xs):
        return integrate(cfg, g, xs[0], xs[1], xs[2], p_join(xs[3:]), s_ts, rtol, atol, dt0)

    sizes = [int(jnp.size(x)) for x in inputs]
    total = sum(sizes)
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    basis = [jnp.eye(total, dtype=jnp.result_type(x))[:, o:o + s].reshape((total,) + jnp.shape(x))
             for x, o, s in zip(inputs, offsets, sizes)]
    out, jac = jax.vmap(lambda t: jax.jvp(solve, (inputs,), (t,)), out_axes=(None, 0))(basis)
    # jac holds d(out)/d(input_i) stacked along a leading axis of length `total`. A save point at t1 is
    # y(t1) for the save time, not for the end of the interval: moving t1 alone does not move it.
    if s_ts.shape[0]:
        ys_s1 = jnp.where((s_ts == s1)[:, None], 0, jac.ys[offsets[2]])
        jac = jac._replace(ys=jac.ys.at[offsets[2]].set(ys_s1))
    t_inputs = [tangents[0], tangents[1], tangents[2]] + list(split_differentiable(tangents[3])[0])
    t_flat = jnp.concatenate([jnp.ravel(jnp.real(_instantiate(t, x))).astype(jnp.result_type(*inputs))
                              for t, x in zip(t_inputs, inputs)]) if total else None

    def apply(j, o):
        if not jnp.issubdtype(o.dtype, jnp.inexact):
            return _float0(o)
        return jnp.tensordot(t_flat, j, axes=1).astype(o.dtype) if total else jnp.zeros_like(o)

    t_out = jax.tree_util.tree_map(apply, jac, out)
    t_ts = _instantiate(tangents[4], s_ts)
    if s_ts.shape[0]:
        f_ts = jax.vmap(lambda s, y: g(s, y, params))(s_ts, out.ys)
        t_out = t_out._replace(ys=t_out.ys + (t_ts[:, None] * f_ts).astype(out.ys.dtype))
    return out, t_out


def _instantiate(t, x):
    if type(t) is jax.custom_derivatives.SymbolicZero or t is None:
        return jnp.zeros_like(x)
    if hasattr(t, "dtype") and t.dtype == jax.dtypes.float0:
        return jnp.zeros_like(x)
    return t


def _float0(x):
    return np.zeros(np.shape(x), dtype=jax.dtypes.float0)
