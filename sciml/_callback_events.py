"""Events of a Python field solved in the kernel (`sciml._callback_field`): located on the host after
each accepted step, from the step's dense output, as `sciml.solvers._events.EventSet.locate` does in
the XLA loop (the same crossing rule, Illinois root finding on the interpolant, terminal counts and
records), so an event function written with NumPy keeps the loop compiled.
"""

from __future__ import annotations

import numpy as np


class HostEvents:
    """scipy-style events ``Event(cond(t, y, args), terminal, direction)`` followed step by step.

    `start` takes the initial point; `step` each accepted step's end points and dense-output polynomial
    ``dc[p]`` in ``theta = (t - t_old) / (t_new - t_old)`` and says whether a terminal event stopped the
    solve (then ``t_stop``/``y_stop`` are the state there). `outputs` gives the records in the form the
    XLA loop returns them (``event_ts``, ``event_ys``, ``event_count``).
    """

    def __init__(self, events, args: tuple, records: int, n: int, dtype):
        self.events, self.args, self.records = events, args, records
        self.terminal = np.array([int(e.terminal) for e in events])
        self.directions = [e.direction for e in events]
        self.at_start = [e.at_start for e in events]
        E = len(events)
        self.count = np.zeros(E, np.int64)
        self.ts = np.full((E, records), np.nan)
        self.ys = np.full((E, records, n), np.nan, dtype)
        self.g: list[float] = []
        self.from_zero: list[bool] = []
        self.t_stop = self.y_stop = None

    def _values(self, t, y) -> list[float]:
        return [_scalar(e.cond(t, y, self.args), i) for i, e in enumerate(self.events)]

    def start(self, t0: float, y0: np.ndarray) -> None:
        self.g = self._values(t0, y0.copy())
        # exact zeros at t0 of `at_start` events: crossings at t0 if the first step leaves zero
        self.from_zero = [a and g == 0 for a, g in zip(self.at_start, self.g)]

    def step(self, t_old: float, t_new: float, y1: np.ndarray, dc: np.ndarray) -> bool:
        g_new = self._values(t_new, y1.copy())
        # up: g_old < 0 <= g_new, down: g_old > 0 >= g_new; direction +1 keeps up, -1 down, 0 both
        # (the XLA loop's rule, `sciml.solvers._events.EventSet._crossings`)
        zero, self.from_zero = self.from_zero, [False] * len(self.g)
        crossed = np.array([((a < 0 <= b or (z and b > 0)) and k != -1) or ((a > 0 >= b or (z and b < 0)) and k != 1)
                            for a, b, k, z in zip(self.g, g_new, self.directions, zero)], bool)
        if not crossed.any():   # most steps: Python scalars only
            self.g = g_new
            return False
        h = t_new - t_old
        theta = np.ones(len(self.events))
        theta[np.asarray(zero, bool)] = 0.0   # a crossing from an exact zero at t0 is at t0
        for i in np.flatnonzero(crossed & ~np.asarray(zero, bool)):
            theta[i] = _illinois(lambda th, i=i: _scalar(self.events[i].cond(t_old + th * h, _poly(dc, th),
                                                                                self.args), i),
                                 self.g[i], g_new[i], t_old, h)
        stops = crossed & (self.terminal > 0) & (self.count + 1 >= self.terminal)
        theta_stop = theta[stops].min() if stops.any() else 2.0
        for i in np.flatnonzero(crossed & (theta <= theta_stop)):
            if self.count[i] < self.records:
                self.ts[i, self.count[i]] = t_new if theta[i] == 1 else t_old + theta[i] * h
                self.ys[i, self.count[i]] = y1 if theta[i] == 1 else _poly(dc, theta[i])
            self.count[i] += 1
        self.g = g_new
        if theta_stop > 1:
            return False
        self.t_stop = t_new if theta_stop == 1 else t_old + theta_stop * h
        self.y_stop = y1.copy() if theta_stop == 1 else _poly(dc, theta_stop)
        return True

    def outputs(self) -> dict:
        return {"event_ts": self.ts, "event_ys": self.ys, "event_count": self.count}


def _poly(dc: np.ndarray, theta: float) -> np.ndarray:
    value = dc[-1].copy()
    for p in range(dc.shape[0] - 2, -1, -1):
        value = value * theta + dc[p]
    return value


def _scalar(value, i: int) -> float:
    if isinstance(value, float):   # Python and NumPy float64 scalars
        return value
    value = np.asarray(value)
    if value.size != 1 or value.dtype.kind not in "fiu":
        raise ValueError(f"event {i} must return a real scalar whose zero is the event; got {value!r}.")
    return float(value.reshape(()))


def _illinois(g_of, g_a: float, g_b: float, t: float, h: float, max_iter: int = 100) -> float:
    """Root of ``g_of(theta)`` in ``[0, 1]`` given the sign change ``g_a``, ``g_b``: the end past the
    crossing, to ``4 eps`` in time (`sciml.solvers._events._illinois`, in Python scalars)."""
    tol = 4 * np.finfo(np.float64).eps * (abs(t) + abs(h)) / abs(h)
    a, b, ga, gb = 0.0, 1.0, g_a, g_b
    for it in range(max_iter):
        if not (b - a > tol and gb != 0):
            break
        theta = b - gb * (b - a) / (gb - ga) if gb != ga else np.nan
        if not np.isfinite(theta) or theta <= a or theta >= b or it % 4 == 3:
            theta = 0.5 * (a + b)
        g = g_of(theta)
        if g == 0 or np.sign(g) == np.sign(gb):
            b, gb, ga = theta, g, ga * 0.5
        else:
            a, ga, gb = theta, g, gb * 0.5
    return b
