"""Adaptive step-size control: Hairer's mixed-tolerance RMS error norm, a PI controller and the
Hairer-Wanner initial step guess (Hairer, Norsett & Wanner, Solving ODEs I, Sec. II.4 and the DOPRI5
code's HINIT and PI control with beta=0.04)."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp


def error_norm(err, y0, y1, rtol, atol):
    """RMS of ``err / (atol + rtol * max(|y0|, |y1|))``; a non-finite candidate counts as ``inf``."""
    abs_y1 = jnp.abs(y1)
    scale = atol + rtol * jnp.maximum(jnp.abs(y0), abs_y1)
    abs_err = jnp.abs(err)
    ratio = jnp.where(scale > 0, abs_err / jnp.where(scale > 0, scale, 1), jnp.where(abs_err == 0, 0, jnp.inf))
    # `0 * |y1|` is NaN exactly where y1 is not finite, which folds that check into this reduction.
    norm = jnp.sqrt(jnp.mean(ratio * ratio + 0 * abs_y1)) if err.size else jnp.zeros((), scale.dtype)
    return jnp.where(jnp.isfinite(norm), norm, jnp.inf)


def rms(v, scale):
    ratio = jnp.abs(v) / scale
    return jnp.sqrt(jnp.mean(ratio * ratio)) if v.size else jnp.zeros((), scale.dtype)


def initial_step(f, t0, y0, f0, rtol, atol, error_order: int, time_dtype):
    """Hairer's initial step guess. Costs one evaluation of ``f``. Returns ``dt0`` in ``time_dtype``.

    ``f`` takes ``(t, y)`` with the problem's args already bound.
    """
    real = jnp.zeros((), y0.dtype).real.dtype
    scale = atol + rtol * jnp.abs(y0)
    d0 = rms(y0, scale)
    d1 = rms(f0, scale)
    tiny = (d0 < 1e-5) | (d1 < 1e-5)
    h0 = jnp.where(tiny, jnp.asarray(1e-6, real), 0.01 * d0 / jnp.where(tiny, 1, d1))
    y1 = y0 + h0.astype(y0.dtype) * f0
    f1 = f(t0 + h0.astype(time_dtype), y1)
    d2 = rms(f1 - f0, scale) / h0
    max_d = jnp.maximum(d1, d2)
    h1 = jnp.where(max_d <= 1e-15, jnp.maximum(jnp.asarray(1e-6, real), h0 * 1e-3),
                   (0.01 / jnp.where(max_d <= 1e-15, 1, max_d)) ** (1.0 / error_order))
    return jnp.minimum(100 * h0, h1).astype(time_dtype)


class ControllerState(NamedTuple):
    err_prev: jax.Array      # error norm of the last accepted step (>= 1e-4), for the PI term
    rejected: jax.Array      # whether the last attempt was rejected (then the step may not grow)


@dataclasses.dataclass(frozen=True)
class PIController:
    """PI step-size controller (Gustafsson; Hairer's DOPRI5 defaults).

    After an accepted step the new step is ``dt * clip(safety * err**-(1/k - 0.75*beta) *
    err_prev**beta, factormin, factormax)`` with ``k`` the error order; after a rejection the step
    shrinks by ``clip(safety * err**-(1/k), factormin, safety)``. ``beta=0`` gives the classical
    integral controller. ``dtmax`` caps the step (scipy's ``max_step``).
    """

    beta: float = 0.04
    safety: float = 0.9
    factormin: float = 0.2
    factormax: float = 10.0
    dtmax: float | None = None

    def init(self, real_dtype) -> ControllerState:
        return ControllerState(jnp.asarray(1e-4, real_dtype), jnp.asarray(False))

    def adapt(self, err, dt, error_order: int, state: ControllerState):
        """Return ``(accept, dt_next, state)`` from the error norm ``err`` of a step of size ``dt``."""
        accept = err <= 1.0
        expo = 1.0 / error_order
        safe_err = jnp.where(err > 0, err, 1.0)
        grow = self.safety * safe_err ** (-(expo - 0.75 * self.beta)) * state.err_prev ** self.beta
        grow = jnp.where(err > 0, grow, self.factormax)
        grow = jnp.clip(grow, self.factormin, jnp.where(state.rejected, 1.0, self.factormax))
        shrink = jnp.clip(self.safety * safe_err ** (-expo), self.factormin, self.safety)
        shrink = jnp.where(jnp.isfinite(err), shrink, self.factormin)
        factor = jnp.where(accept, grow, shrink)
        dt_next = dt * factor.astype(dt.dtype)
        if self.dtmax is not None:
            dt_next = jnp.minimum(dt_next, jnp.asarray(self.dtmax, dt.dtype))
        err_prev = jnp.where(accept, jnp.maximum(err, 1e-4).astype(state.err_prev.dtype), state.err_prev)
        return accept, dt_next, ControllerState(err_prev, ~accept)
