"""The linear algebra of the stiff solvers: Jacobians, the iteration matrix ``I - c J`` and its solves.

Every stiff method solves systems with the matrix ``I - c J`` (``J = df/dy``; ``c = h gamma`` for
Rosenbrock and ESDIRK methods, ``h / alpha_q`` for BDF). The dense path factors it once (LU with
partial pivoting) and reuses the factors for every solve until ``c`` or ``J`` changes; the
matrix-free path (BDF's ``linear_solver="gmres"``) never forms ``J`` and solves with GMRES on
Jacobian-vector products. Jacobians come from forward-mode autodiff of ``f`` (``n`` batched
Jacobian-vector products); a user's ``jac=`` takes their place inside ``sciml.solve``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import lu_factor, lu_solve
from jax.scipy.sparse.linalg import gmres


class LU(NamedTuple):
    """LU factors of ``I - c J`` (``jax.scipy.linalg.lu_factor``)."""

    lu: jax.Array
    piv: jax.Array


def jacobian(f, t, y) -> jax.Array:
    """``df/dy`` at ``(t, y)``, shape ``(n, n)``, in the state's dtype (forward mode). For a complex state
    it is the complex derivative (``f`` holomorphic in ``y``, as for scipy's complex Jacobians)."""
    return jax.jacfwd(lambda v: f(t, v), holomorphic=bool(jnp.iscomplexobj(y)))(y)


def time_derivative(f, t, y) -> jax.Array:
    """``df/dt`` at ``(t, y)`` (one Jacobian-vector product; zeros, at no cost, when ``f`` ignores ``t``)."""
    return jax.jvp(lambda s: f(s, y), (t,), (jnp.ones_like(t),))[1].astype(y.dtype)


def factor(J, c, mass=None) -> LU:
    """Factor ``I - c J``, or ``M - c J`` for a mass matrix ``mass`` (an ``(n, n)`` array in ``J``'s dtype)."""
    n = J.shape[0]
    M = jnp.eye(n, dtype=J.dtype) if mass is None else mass
    return LU(*lu_factor(M - c.astype(J.dtype) * J))


def solve(lu: LU, b) -> jax.Array:
    """``(I - c J)^{-1} b`` from the factors."""
    return lu_solve((lu.lu, lu.piv), b)


def empty_lu(n: int, dtype) -> LU:
    """Placeholder factors (the identity) for a state whose factorisation is not computed yet."""
    return LU(jnp.eye(n, dtype=dtype), jnp.arange(n, dtype=jnp.int32))


def dense_tangent_solve(g, b):
    """Solve ``g(x) = b`` for a linear ``g`` by materialising its matrix (``jax.lax.custom_root``'s
    ``tangent_solve`` for the dense path; runs only when a solve is differentiated)."""
    if jnp.iscomplexobj(b):   # a complex state (RadauIIA5): g is complex-linear, its columns are g(e_k)
        return jnp.linalg.solve(jax.vmap(g, out_axes=1)(jnp.eye(b.shape[0], dtype=b.dtype)), b)
    return jnp.linalg.solve(jax.jacfwd(g)(jnp.zeros_like(b)), b)


def gmres_solve(matvec, b, tol: float, restart: int, maxiter: int):
    """Solve ``matvec(x) = b`` by restarted GMRES (relative residual ``tol``); ``x0 = b``, the solution
    of ``I - c J`` for ``c -> 0``."""
    x, _ = gmres(matvec, b, x0=b, tol=tol, atol=0.0, restart=restart, maxiter=maxiter, solve_method="batched")
    return x


def attach_jacobian(f, jac):
    """``f(s, y, args)`` whose derivative in ``y`` is ``jac(s, y, args) @ dy``.

    A ``jax.custom_jvp``, so every place that differentiates ``f`` in ``y`` (the stiff solvers'
    ``jax.jacfwd``, and gradients through a solve) uses the given Jacobian; derivatives in ``s`` and
    ``args`` still come from autodiff of ``f``. ``jac`` must be differentiable by JAX for gradients
    through solvers that differentiate ``J`` (Rosenbrock).
    """

    @jax.custom_jvp
    def g(s, y, args):
        return f(s, y, args)

    def rule(primals, tangents):
        s, y, args = primals
        ds, dy, dargs = tangents
        out = f(s, y, args)
        tangent = jnp.zeros_like(out)
        if not _is_zero(dy):
            tangent = tangent + jac(s, y, args) @ dy
        rest = [ds] + jax.tree_util.tree_leaves(dargs, is_leaf=_is_zero)
        if not all(_is_zero(t) for t in rest):
            fill = lambda t, p: _zero_tangent(p) if _is_zero(t) else t  # noqa: E731
            ds, dargs = fill(ds, s), jax.tree_util.tree_map(fill, dargs, args, is_leaf=_is_zero)
            tangent = tangent + jax.jvp(lambda s_, a_: f(s_, y, a_), (s, args), (ds, dargs))[1]
        return out, tangent

    g.defjvp(rule, symbolic_zeros=True)
    return g


def _is_zero(t) -> bool:
    return isinstance(t, jax.custom_derivatives.SymbolicZero)


def _zero_tangent(p):
    if jnp.issubdtype(jnp.result_type(p), jnp.inexact):
        return jnp.zeros_like(p)
    return np.zeros(jnp.shape(p), jax.dtypes.float0)
