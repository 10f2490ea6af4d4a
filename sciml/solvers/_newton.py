"""The simplified Newton iteration of the implicit solvers (Kvaerno5's stages, BDF's corrector).

Both solve ``G(x) = c f(t, base + x) - rhs - x = 0`` for the increment ``x`` of a stage (or of the BDF
prediction), with a matrix ``I - c J`` factored once and reused: ``x <- x + (I - c J)^{-1} G(x)``.

Stopping test (Hairer & Wanner, *Solving ODEs II*, Sec. IV.8; scipy's ``Radau``/``BDF``): with
``theta_k = |dx_k| / |dx_{k-1}|`` (scaled RMS norm), the iteration has converged once
``eta |dx_k| <= tol`` where ``eta = theta / (1 - theta)``; the first iteration uses
``eta = max(eta_prev, eps) ** 0.8`` from the previous solve, so a well-predicted stage costs one
evaluation. It diverges (the step is then rejected and retried smaller, or with a fresh Jacobian) when
``theta >= 1`` or ``theta ** (max_iter - k) / (1 - theta) |dx_k| > tol``. ``tol`` follows scipy:
``max(10 eps / rtol, min(0.03, sqrt(rtol)))``. A failed solve also says how much Hairer's RADAU5 would
shrink the step (``shrink``): ``0.8 q ** (-1 / (2 + max_iter - k))`` with ``q`` the predicted final
error over ``tol`` (clipped to ``[1e-4, 20]``) when it stopped because convergence would come too late,
``0.5`` when it diverged or ran out of iterations.

The solution is wrapped in ``jax.lax.custom_root``, so its derivatives come from the implicit-function
theorem at the converged root, not from differentiating the iterations (which need not even have the
same count in a re-run).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

#: iterations allowed before the stage (and so the step) counts as not converged
MAX_ITER = 4


class Outcome(NamedTuple):
    x: jax.Array            # the increment (NaN if an iterate became non-finite)
    converged: jax.Array    # bool
    nonfinite: jax.Array    # bool: an iterate or f became NaN/Inf (then the step fails as non-finite)
    iterations: jax.Array   # int32: evaluations of f made
    eta: jax.Array          # the last theta / (1 - theta), for the next solve's first test
    rate: jax.Array         # the last contraction factor theta (0 after a single iteration)
    shrink: jax.Array       # step-size factor after a failure (RADAU5's rule; see the module notes)


def tolerance(rtol, dtype) -> jax.Array:
    """scipy's Newton tolerance for the scaled norm: ``max(10 eps / rtol, min(0.03, sqrt(rtol)))``."""
    r = jnp.min(jnp.asarray(rtol)).astype(dtype)
    eps = jnp.finfo(dtype).eps
    return jnp.maximum(10 * eps / r, jnp.minimum(0.03, jnp.sqrt(r)))


def _rms(v):
    if jnp.iscomplexobj(v):   # a complex state (RadauIIA5): the modulus
        v = jnp.abs(v)
    return jnp.sqrt(jnp.mean(v * v)) if v.size else jnp.zeros((), v.dtype)


def solve(residual: Callable, x0, linsolve: Callable, tangent_solve: Callable, scale, tol, eta0, active,
          max_iter: int = MAX_ITER) -> Outcome:
    """Solve ``residual(x) = 0`` by ``x <- x + linsolve(residual(x))`` from ``x0``.

    ``residual`` closes over everything that ``x`` depends on (differentiable through ``custom_root``);
    ``linsolve(r)`` applies ``(I - c J)^{-1}``; ``tangent_solve(g, b)`` solves the linearised system
    when the solution is differentiated. ``active=False`` skips the iteration (a failed earlier stage).
    """
    real = scale.dtype
    eps = jnp.finfo(real).eps

    def iterate(G, x_start):
        def cond(c):
            x, k, done, conv, bad, norm_old, eta, rate, shrink = c
            return active & ~done & (k < max_iter)

        def body(c):
            x, k, done, conv, bad, norm_old, eta, rate, shrink = c
            dx = linsolve(G(x))
            norm = _rms(dx / scale)
            theta = norm / jnp.where(norm_old > 0, norm_old, 1)
            first = k == 0
            eta_k = jnp.where(first, eta, theta / jnp.maximum(1 - theta, eps))
            late = theta ** (max_iter - k) / jnp.maximum(1 - theta, eps) * norm / tol
            diverging = ~first & ((theta >= 1) | (late > 1))
            q = jnp.clip(jnp.where(theta < 1, late, 20.0), 1e-4, 20.0)
            shrink = jnp.where(diverging & (theta < 0.99), 0.8 * q ** (-1.0 / (2 + max_iter - k)), shrink)
            nonfinite = ~jnp.isfinite(norm)
            x = jnp.where(diverging & ~nonfinite, x, x + dx)
            converged = ~diverging & ~nonfinite & ((norm == 0) | (eta_k * norm <= tol))
            done = diverging | nonfinite | converged
            return (x, k + 1, done, converged, nonfinite, norm, jnp.where(first, eta, eta_k),
                    jnp.where(first, rate, theta), shrink)

        false, zero = jnp.asarray(False), jnp.zeros((), real)
        x, k, _, conv, bad, _, eta, rate, shrink = lax.while_loop(
            cond, body, (x_start, jnp.zeros((), jnp.int32), false, false, false, zero, eta0, zero,
                         jnp.asarray(0.5, real)))
        aux = jnp.stack([conv, bad, k, eta, rate, shrink]).astype(real)   # custom_root carries float aux only
        return x, aux

    x, aux = lax.custom_root(residual, x0, iterate, tangent_solve, has_aux=True)
    return Outcome(x=x, converged=aux[0] > 0, nonfinite=aux[1] > 0, iterations=aux[2].astype(jnp.int32),
                   eta=jnp.maximum(aux[3], eps) ** 0.8, rate=aux[4], shrink=aux[5])
