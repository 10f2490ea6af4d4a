"""Is a failed explicit solve stiff? A cheap check, run only on the failure path.

An explicit method is stable while ``h |lambda| <= bound`` for the eigenvalues ``lambda`` of
``J = df/dy`` (``bound``: the length of its stability interval on the negative real axis, from the
tableau's stability polynomial). A problem is stiff for it when the step is held near that bound
although the solution itself changes on a much longer time scale. At the state where the solve
stopped we estimate

* the spectral radius ``rho`` of ``J`` by power iteration on Jacobian-vector products (no ``n x n``
  matrix; a few dozen ``jvp`` calls), and
* the solution's time scale ``T = |y| / |f(t, y)|`` (both in the tolerance-scaled RMS norm),

and call the problem stiff when ``rho h >= bound / 4`` and ``T >= 100 h``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

#: power iterations for the spectral radius (the estimate only has to be right within a factor ~2)
ITERATIONS = 40
#: the step is "at the stability limit" from this fraction of the bound
NEAR_LIMIT = 0.25
#: the solution's time scale must exceed the step by this factor
SCALE_SEPARATION = 100.0


@functools.lru_cache(maxsize=None)
def _bound_of(a: tuple, b: tuple) -> float:
    s = len(b)
    A = np.zeros((s, s))
    for i, row in enumerate(a):
        A[i, :len(row)] = row
    # R(z) = 1 + sum_k z^k b^T A^(k-1) 1 for an explicit (nilpotent) A
    coeffs, v = [1.0], np.ones(s)
    for _ in range(s):
        coeffs.append(float(np.asarray(b) @ v))
        v = A @ v
    x = np.linspace(0.0, 50.0, 50_001)
    R = np.polynomial.polynomial.polyval(-x, coeffs)
    unstable = np.flatnonzero(np.abs(R) > 1.0 + 1e-9)
    return float(x[unstable[0] - 1]) if unstable.size else float(x[-1])


def stability_bound(solver) -> float:
    """Length of an explicit method's real stability interval ``[-bound, 0]`` (2 when unknown)."""
    tab = getattr(solver, "tableau", None)
    if tab is None or not hasattr(tab, "b"):
        return 2.0
    return _bound_of(tuple(tuple(row) for row in tab.a), tuple(tab.b))


def spectral_radius(f, t, y) -> jax.Array:
    """Estimate ``max |lambda(df/dy)|`` at ``(t, y)`` by power iteration (geometric mean of the growth
    over the last half of the iterations, which also settles for a dominant complex pair)."""
    _, jvp = jax.linearize(lambda v: f(t, v), y)
    v0 = jnp.cos(jnp.arange(y.shape[0], dtype=y.dtype) * 1.7 + 0.3)
    v0 = v0 / jnp.linalg.norm(v0)

    def body(k, carry):
        v, log_growth = carry
        w = jvp(v)
        norm = jnp.linalg.norm(w)
        keep = k >= ITERATIONS // 2
        log_growth = log_growth + jnp.where(keep, jnp.log(jnp.maximum(norm, jnp.finfo(norm.dtype).tiny)), 0)
        return w / jnp.where(norm > 0, norm, 1), log_growth

    _, log_growth = lax.fori_loop(0, ITERATIONS, body, (v0, jnp.zeros((), jnp.abs(v0).dtype)))
    return jnp.exp(log_growth / (ITERATIONS - ITERATIONS // 2))


def looks_stiff(f, t, y, dt, rtol, atol, bound: float) -> jax.Array:
    """Whether the step ``dt`` at ``(t, y)`` is held at the stability limit while ``y`` changes slowly."""
    dt = jnp.abs(dt).astype(jnp.abs(y).dtype)
    rho = spectral_radius(f, t, y)
    scale = atol + rtol * jnp.abs(y)
    size = jnp.sqrt(jnp.mean((y / scale) ** 2)) + 1.0
    speed = jnp.sqrt(jnp.mean((f(t, y) / scale) ** 2))
    at_limit = rho * dt >= NEAR_LIMIT * bound
    slow = size >= SCALE_SEPARATION * dt * speed
    return at_limit & slow & jnp.isfinite(rho)
