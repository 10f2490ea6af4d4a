"""Adaptive step-size control: Hairer's mixed-tolerance RMS error norm, the PI, I and PID controllers
and the Hairer-Wanner initial step guess (Hairer, Norsett & Wanner, Solving ODEs I, Sec. II.4 and the
DOPRI5 code's HINIT and PI control)."""

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
    """RMS of ``v / scale``; components with a zero scale (``atol=0`` at a zero state) carry no
    information about the step size and count as 0, not as a division by zero."""
    ratio = jnp.where(scale > 0, jnp.abs(v) / jnp.where(scale > 0, scale, 1), 0)
    return jnp.sqrt(jnp.mean(ratio * ratio)) if v.size else jnp.zeros((), scale.dtype)


def initial_step(f, t0, y0, f0, rtol, atol, error_order: int, time_dtype, max_dt):
    """Hairer's initial step guess. Costs one evaluation of ``f``. Returns ``dt0`` in ``time_dtype``.

    ``f`` takes ``(t, y)`` with the problem's args already bound. ``max_dt`` (``t1 - t0``, or less with
    ``max_step``) caps the trial step as well as the guess, so ``f`` is never evaluated outside the span.
    """
    max_dt = jnp.asarray(max_dt, time_dtype)
    real = jnp.zeros((), y0.dtype).real.dtype
    scale = atol + rtol * jnp.abs(y0)
    d0 = rms(y0, scale)
    d1 = rms(f0, scale)
    tiny = (d0 < 1e-5) | (d1 < 1e-5)
    h0 = jnp.where(tiny, jnp.asarray(1e-6, real), 0.01 * d0 / jnp.where(tiny, 1, d1))
    h0 = jnp.minimum(h0, max_dt.astype(real))
    y1 = y0 + h0.astype(y0.dtype) * f0
    f1 = f(t0 + h0.astype(time_dtype), y1)
    d2 = rms(f1 - f0, scale) / h0
    max_d = jnp.maximum(d1, d2)
    h1 = jnp.where(max_d <= 1e-15, jnp.maximum(jnp.asarray(1e-6, real), h0 * 1e-3),
                   (0.01 / jnp.where(max_d <= 1e-15, 1, max_d)) ** (1.0 / error_order))
    return jnp.minimum(jnp.minimum(100 * h0, h1).astype(time_dtype), max_dt)


def guess_order(solver, controller) -> float:
    """The error order the initial-step guess uses: the controller's where it states one
    (``PIDController(error_order=...)``), else the solver's. The kernel asks with its counterpart of
    the solver (the same ``error_order`` and ``order``), so both loops make the same first guess."""
    return getattr(controller, "error_order", None) or solver.error_order or solver.order + 1


def step_cap(t0, t1, dtmax):
    """The largest first step: the span, or ``dtmax`` (``max_step``) when smaller."""
    span = t1 - t0
    return span if dtmax is None else jnp.minimum(span, jnp.asarray(dtmax, span.dtype))


class ControllerState(NamedTuple):
    err_prev: jax.Array      # error norm of the last accepted step (>= 1e-4), for the PI term
    rejected: jax.Array      # whether the last attempt was rejected (then the step may not grow)


@dataclasses.dataclass(frozen=True)
class PIController:
    """PI step-size controller (Gustafsson; Hairer's DOPRI5 defaults), the default.

    After an accepted step the new step is ``dt * clip(safety * err**-(1/k - 0.75*beta) *
    err_prev**beta, factormin, factormax)`` with ``k`` the error order and ``err_prev`` the error norm
    of the last accepted step (at least 1e-4); no growth right after a rejection. After a rejection
    the step shrinks by ``clip(safety * err**-(1/k), factormin, safety)``. A step is accepted when
    ``err <= 1``. ``beta=0`` gives the classical integral controller. ``dtmax`` caps the step (scipy's
    ``max_step``). How the defaults compare with diffrax's controller at equal accuracy:
    ``benchmarks/bench_controllers.py`` and the docs' "Step-size control".
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


@dataclasses.dataclass(frozen=True)
class IController(PIController):
    """Integral step-size control: ``dt * clip(safety * err**(-1/k), factormin, factormax)`` after an
    accepted step (no growth right after a rejection), the same shrink as `PIController` after a
    rejection. The PI controller with ``beta=0``."""

    beta: float = dataclasses.field(default=0.0, init=False)


class PIDState(NamedTuple):
    prev_inv: jax.Array       # 1 / error norm of the last accepted step (1 at the start)
    prev_prev_inv: jax.Array  # and of the one before


@dataclasses.dataclass(frozen=True)
class PIDController:
    """PID step-size control in diffrax's parameterisation (``diffrax.PIDController``), so that a solve
    can take diffrax's step sequence: with ``inv = 1/err`` and ``k`` the error order,

        factor = clip(safety * inv**((i + p + d)/k) * inv_prev**(-(p + 2d)/k) * inv_prev2**(d/k),
                      1 if accepted else factormin, factormax if accepted else safety)

    A step is accepted when ``err < 1``; an accepted step never shrinks the next one. Defaults
    (``pcoeff=0, icoeff=1, dcoeff=0``) are diffrax's default, an integral controller. ``error_order``
    overrides the solver's ``error_order`` (for the step control and the first-step guess); the
    solvers' own are diffrax's (Tsit5, Dopri5: 5; Bosh3: 3; Dopri8: 8).

    To take diffrax's step sequence exactly (equal accepted and rejected counts, step times equal up
    to the rounding of the error estimate), give the solve the same solver, tolerances and
    coefficients, leave ``error_order`` unset, and pass ``dt0=0.01``: diffrax 0.7 starts every ODE
    solve with a step of 0.01 when ``dt0=None`` (its Hairer guess only runs for a bare ``ODETerm``,
    and ``diffeqsolve`` wraps the term before asking). ``diffrax.PIDController(rtol=1e-6, atol=1e-6,
    pcoeff=0.3, icoeff=0.4)`` with ``diffrax.Tsit5()`` is::

        sciml.solve(f, y0, t_span, args, rtol=1e-6, atol=1e-6, dt0=0.01,
                    controller=PIDController(pcoeff=0.3, icoeff=0.4))

    Example:
        >>> import jax.numpy as jnp, sciml
        >>> pid = sciml.solvers.PIDController(pcoeff=0.3, icoeff=0.4)
        >>> sol = sciml.solve(lambda t, y, a: -y, jnp.ones(1), (0.0, 1.0), controller=pid)
        >>> bool(sol.success)
        True
    """

    pcoeff: float = 0.0
    icoeff: float = 1.0
    dcoeff: float = 0.0
    safety: float = 0.9
    factormin: float = 0.2
    factormax: float = 10.0
    dtmax: float | None = None
    error_order: float | None = None

    def __post_init__(self):
        for name in ("safety", "factormax"):
            if not getattr(self, name) > 0:
                raise ValueError(f"`PIDController({name}=...)` must be positive; got {getattr(self, name)!r}.")
        if not 0 < self.factormin <= 1:
            raise ValueError(f"`PIDController(factormin=...)` must be in (0, 1]; got {self.factormin!r}.")

    def init(self, real_dtype) -> PIDState:
        one = jnp.ones((), real_dtype)
        return PIDState(one, one)

    def exponents(self, error_order: float) -> tuple[float, float, float]:
        """The powers of the inverse error norms of this step, the last accepted one and the one before."""
        k = error_order
        return (self.icoeff + self.pcoeff + self.dcoeff) / k, -(self.pcoeff + 2 * self.dcoeff) / k, self.dcoeff / k

    def adapt(self, err, dt, error_order: int, state: PIDState):
        """Return ``(accept, dt_next, state)`` from the error norm ``err`` of a step of size ``dt``."""
        k = self.error_order if self.error_order is not None else error_order
        accept = err < 1.0
        inv = 1.0 / err
        c1, c2, c3 = self.exponents(k)
        factor = self.safety * _power(inv, c1) * _power(state.prev_inv, c2) * _power(state.prev_prev_inv, c3)
        factor = jnp.clip(factor, jnp.where(accept, 1.0, self.factormin), jnp.where(accept, self.factormax, self.safety))
        factor = jnp.where(jnp.isnan(factor), self.factormin, factor)
        dt_next = dt * factor.astype(dt.dtype)
        if self.dtmax is not None:
            dt_next = jnp.minimum(dt_next, jnp.asarray(self.dtmax, dt.dtype))
        inv = jnp.where((inv == 0) | jnp.isinf(inv) | jnp.isnan(inv), 1.0, inv).astype(state.prev_inv.dtype)
        return accept, dt_next, PIDState(jnp.where(accept, inv, state.prev_inv),
                                         jnp.where(accept, state.prev_inv, state.prev_prev_inv))


def _power(x, c):
    """``x**c``, exactly 1 where ``c`` is 0 (as diffrax skips those factors: 0**0 and inf**0 stay 1)."""
    return 1.0 if c == 0 else x ** c
