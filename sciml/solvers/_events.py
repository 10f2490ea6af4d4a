"""Events: zero crossings of ``cond(t, y, args)`` located on the dense output of the step.

A crossing is detected by a sign change of ``cond`` between the ends of an accepted step (filtered by
``direction``), then located by Illinois-modified regula falsi on the step's interpolating polynomial
to the time resolution of the time dtype. A terminal event ends the solve there. A ``cond`` that is
exactly zero at ``t0`` is a crossing at ``t0`` only for an event with ``at_start=True`` (scipy's rule,
which `sciml.solve_ivp` follows), and only if the first step leaves zero in the event's direction.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from sciml.solvers._base import evaluate_polynomial


@dataclasses.dataclass(frozen=True)
class Event:
    """A zero crossing of ``cond(t, y, args)`` (a real scalar) during a solve.

    Args:
        cond: ``cond(t, y, args) -> scalar``; ``y`` has the structure of ``y0``.
        terminal: stop the solve at the first crossing (the final state is the state there); a positive
            int ``k`` stops it at the ``k``-th crossing (scipy's convention), ``False``/``0`` never.
        direction: ``+1`` only for crossings from negative to positive, ``-1`` only from positive to
            negative, ``0`` both. "From/to" follows the direction of integration.
        at_start: whether a ``cond`` exactly zero at ``t0`` that the first step moves away from zero (in
            ``direction``) is a crossing at ``t0`` (then recorded there; a terminal one ends the solve at
            ``t0``). scipy's `solve_ivp` counts it, and `sciml.solve_ivp` does too; the default ``False``
            lets a solve restarted on an event's surface (a bouncing ball from the ground) go on.

    Example:
        >>> import jax.numpy as jnp, sciml
        >>> hit_ground = sciml.Event(lambda t, y, args: y[0], direction=-1)
        >>> sol = sciml.solve(lambda t, y, a: jnp.stack([y[1], -9.81]), jnp.array([10.0, 0.0]),
        ...                   (0.0, 5.0), events=[hit_ground])
        >>> round(float(sol.event_t[0]), 4)   # sqrt(2 * 10 / 9.81)
        1.4278
    """

    cond: Callable
    terminal: bool | int = True
    direction: int = 0
    at_start: bool = False

    def __post_init__(self):
        if not callable(self.cond):
            raise TypeError(f"`Event.cond` must be a callable cond(t, y, args); got {self.cond!r}.")
        if not (isinstance(self.terminal, (bool, int)) and self.terminal >= 0):
            raise ValueError(f"`Event.terminal` must be a bool or a positive int (stop at that crossing); got "
                             f"{self.terminal!r}.")
        if self.direction not in (-1, 0, 1):
            raise ValueError(f"`Event.direction` must be -1, 0 or +1; got {self.direction!r}.")
        if not isinstance(self.at_start, bool):
            raise TypeError(f"`Event.at_start` must be a bool; got {self.at_start!r}.")


class EventState(NamedTuple):
    g: jax.Array          # (E,) cond values at the current time
    count: jax.Array      # (E,) crossings found so far
    t: jax.Array          # (E, R) times of the first R crossings (NaN where none)
    y: jax.Array          # (E, R, n) states there
    fired: jax.Array      # index of the terminal event that ended the solve, -1 if none
    first: jax.Array      # True until the first accepted step (zeros at t0 count only then)


@dataclasses.dataclass(frozen=True, eq=False)
class EventSet:
    """The events of one solve in the loop's terms: ``values(s, y, args) -> (E,)`` on the flat state
    in forward time, plus each event's static options."""

    values: Callable
    terminal: tuple[int, ...]      # the crossing that stops the solve (1: the first), 0: never
    directions: tuple[int, ...]
    records: int = 1
    at_start: tuple[bool, ...] = ()

    def init(self, args, s0, y0) -> EventState:
        g = self.values(s0, y0, args)
        E, R, n = len(self.terminal), self.records, y0.shape[0]
        return EventState(g=g, count=jnp.zeros((E,), jnp.int32), t=jnp.full((E, R), jnp.nan, s0.dtype),
                          y=jnp.full((E, R, n), jnp.nan, y0.dtype), fired=jnp.asarray(-1, jnp.int32),
                          first=jnp.asarray(True))

    def _from_zero(self, state: EventState) -> jax.Array:
        """(E,) whether each event's value is an exact zero at ``t0`` that counts (``at_start``)."""
        at_start = jnp.asarray(self.at_start or (False,) * len(self.terminal))
        return at_start & state.first & (state.g == 0)

    def _crossings(self, state: EventState, g_new) -> jax.Array:
        g_old, zero = state.g, self._from_zero(state)
        up = ((g_old < 0) & (g_new >= 0)) | (zero & (g_new > 0))
        down = ((g_old > 0) & (g_new <= 0)) | (zero & (g_new < 0))
        masks = [{1: up[i], -1: down[i], 0: up[i] | down[i]}[d] for i, d in enumerate(self.directions)]
        return jnp.stack(masks)

    def crossed(self, state: EventState, g_new) -> jax.Array:
        return jnp.any(self._crossings(state, g_new))

    def locate(self, state: EventState, accept, g_new, args, s, dt, s_new, y1, coeffs):
        """Find the crossings inside an accepted step; returns ``(state, hit_terminal, s_end, y_end)``."""
        crossed = self._crossings(state, g_new) & accept
        zero = self._from_zero(state)
        thetas = []
        for i in range(len(self.terminal)):
            g_of = lambda theta, i=i: self.values(s + theta.astype(s.dtype) * dt,  # noqa: E731
                                                  evaluate_polynomial(coeffs, theta), args)[i]
            search = crossed[i] & ~zero[i]   # a crossing from an exact zero at t0 is at theta = 0

            def root(i=i, g_of=g_of, search=search):
                return _illinois(g_of, state.g[i], g_new[i], s, dt, search)

            thetas.append(lax.cond(search, root, lambda: jnp.ones((), s.dtype)))
        theta = jnp.where(zero, jnp.zeros((), s.dtype), jnp.stack(thetas))
        terminal = jnp.asarray(self.terminal, jnp.int32)
        stops = crossed & (terminal > 0) & (state.count + 1 >= terminal)
        big = jnp.asarray(2.0, s.dtype)
        theta_stop = jnp.min(jnp.where(stops, theta, big))
        hit = theta_stop <= 1
        fired = jnp.where(hit, jnp.argmin(jnp.where(stops, theta, big)).astype(jnp.int32),
                          state.fired)
        s_stop = jnp.where(hit, s + theta_stop * dt, s_new)
        y_stop = jnp.where(hit, evaluate_polynomial(coeffs, theta_stop), y1)
        s_stop = jnp.where(theta_stop == 1, s_new, s_stop)
        y_stop = jnp.where(theta_stop == 1, y1, y_stop)
        # Record every crossing up to (and including) the terminal one.
        record = crossed & (theta <= theta_stop)
        rec_s = jnp.where(theta == 1, s_new, s + theta * dt)
        count, ts, ys = state.count, state.t, state.y
        for i in range(len(self.terminal)):
            slot = jnp.where(record[i], count[i], self.records)
            ts = ts.at[i, slot].set(rec_s[i], mode="drop")
            y_i = jnp.where(theta[i] == 1, y1, evaluate_polynomial(coeffs, theta[i]))
            ys = ys.at[i, slot].set(y_i, mode="drop")
        count = count + record.astype(jnp.int32)
        g = jnp.where(accept, g_new, state.g)
        return (EventState(g=g, count=count, t=ts, y=ys, fired=fired, first=state.first & ~accept),
                hit, s_stop, y_stop)


def event_value(value, i: int) -> jax.Array:
    """The value of event ``i``'s ``cond`` as a real scalar, or a clear error about what it returned."""
    value = jnp.asarray(value)
    if value.size != 1:
        raise ValueError(f"`Event.cond` of event {i} must return a scalar; got shape {value.shape}. "
                         f"Use one `Event` per component, e.g. `Event(lambda t, y, args: y[0])`.")
    if not jnp.issubdtype(value.dtype, jnp.floating):
        raise TypeError(f"`Event.cond` of event {i} must return a real float whose zero is the event; got "
                        f"dtype {value.dtype.name}. Return the continuous quantity (e.g. `y[0]`), "
                        f"not a test such as `y[0] < 0`.")
    return value.reshape(())


def _illinois(g_of, g_a, g_b, s, dt, active, max_iter: int = 100):
    """Root of ``g_of(theta)`` in ``[0, 1]`` given a sign change; returns the end past the crossing.

    ``active`` is False where there is no crossing: under ``vmap`` the ``lax.cond`` around this runs
    for every trajectory, and those without a sign change must not iterate (or pay for it).
    """
    dtype = s.dtype
    eps = jnp.finfo(dtype).eps
    tol = 4 * eps * (jnp.abs(s) + jnp.abs(dt)) / jnp.abs(dt)
    g_a = g_a.astype(dtype)
    g_b = g_b.astype(dtype)

    def cond(c):
        a, b, ga, gb, it = c
        return active & (b - a > tol) & (gb != 0) & (it < max_iter)

    def body(c):
        a, b, ga, gb, it = c
        theta = b - gb * (b - a) / (gb - ga)
        bisect = ~jnp.isfinite(theta) | (theta <= a) | (theta >= b) | (it % 4 == 3)
        theta = jnp.where(bisect, 0.5 * (a + b), theta)
        g = g_of(theta).astype(dtype)
        same_as_b = (g == 0) | (jnp.sign(g) == jnp.sign(gb))
        a2 = jnp.where(same_as_b, a, theta)
        ga2 = jnp.where(same_as_b, ga * 0.5, g)
        b2 = jnp.where(same_as_b, theta, b)
        gb2 = jnp.where(same_as_b, g, gb * 0.5)
        return a2, b2, ga2, gb2, it + 1

    init = (jnp.zeros((), dtype), jnp.ones((), dtype), g_a, g_b, jnp.zeros((), jnp.int32))
    return lax.while_loop(cond, body, init)[1]
