"""scipy's result types for `sciml.solve_ivp`: ``OdeResult`` and the continuous ``OdeSolution``.

`sciml.solve_ivp` returns what ``scipy.integrate.solve_ivp`` returns, field for field and shape for
shape: ``t``/``y`` (plain lists ``[]`` when ``t_eval`` was given and no point was reached, as scipy
gives them), ``t_events``/``y_events`` per event (``y_events[i]`` of shape ``(0,)`` without a crossing),
and ``sol``, callable on a scalar (shape ``(n,)``) or a vector of times (shape ``(n, m)``), with the step
times ``ts`` and one callable per step in ``interpolants``.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from sciml.solvers._status import Status, describe

MESSAGES = {0: "The solver successfully reached the end of the integration interval.",
            1: "A termination event occurred."}


class OdeResult(dict):
    """scipy's ``OdeResult``: a dict whose keys are also attributes (``t, y, sol, t_events, y_events,
    nfev, njev, nlu, status, message, success``)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError as err:
            raise AttributeError(name) from err

    __setattr__ = dict.__setitem__

    def __repr__(self) -> str:
        keys = ", ".join(self.keys())
        return f"OdeResult({keys})"


class OdeSolution:
    """The continuous solution (``dense_output=True``), as scipy's ``OdeSolution``.

    ``sol(t)``: shape ``(n,)`` for a scalar ``t``, ``(n, m)`` for ``m`` times; at a step time it is the
    step's state exactly, past the solved span the first or last step's polynomial extrapolated (as
    scipy's). ``ts``: the step times, from ``t0`` to where the solve stopped; ``interpolants[k]``
    evaluates step ``k`` (between ``ts[k]`` and ``ts[k + 1]``); ``t_min``/``t_max``: the solved span.
    """

    def __init__(self, evaluate: Callable, ts: np.ndarray, n: int, step_ys: np.ndarray | None = None):
        self._evaluate = evaluate
        self.ts = np.asarray(ts)
        self.n = n
        self._step_ys = step_ys                                   # (len(ts), n) where known
        self.t_min, self.t_max = float(np.min(self.ts)), float(np.max(self.ts))
        self.n_segments = max(len(self.ts) - 1, 0)

    @property
    def interpolants(self) -> list:
        """One callable per step, each ``interpolant(t)`` with ``sol(t)``'s shapes."""
        return [_Interpolant(self, self.ts[k], self.ts[k + 1]) for k in range(self.n_segments)]

    def __call__(self, t):
        t = np.asarray(t, dtype=np.float64)
        if self.n == 0 or t.size == 0:
            return np.zeros((self.n,) + t.shape)
        values = np.array(self._evaluate(t.ravel()))            # (m, n)
        if self._step_ys is not None:                           # a step time: that step's state
            order = np.argsort(self.ts, kind="stable")
            k = np.clip(np.searchsorted(self.ts[order], t.ravel()), 0, len(self.ts) - 1)
            at_step = self.ts[order][k] == t.ravel()
            values[at_step] = self._step_ys[order[k[at_step]]]
        return values[0] if t.ndim == 0 else values.T


class _Interpolant:
    """Step ``[t_old, t]`` of an `OdeSolution`."""

    def __init__(self, sol: OdeSolution, t_old, t):
        self._sol, self.t_old, self.t = sol, float(t_old), float(t)

    def __call__(self, t):
        return self._sol(t)


@jax.jit
def _evaluate(sol, t):
    return sol.evaluate(t, extrapolate=True)


def dense_solution(sol, ts, step_ys=None) -> OdeSolution:
    """``sol`` (a device `Solution` with dense output) as scipy's ``OdeSolution`` over the steps ``ts``
    (with their states ``step_ys`` where known); one compiled evaluation serves every solution of the
    same shapes."""
    n = int(jax.tree_util.tree_leaves(sol.y_final)[0].shape[0])
    return OdeSolution(lambda t: _evaluate(sol, jnp.asarray(t)), ts, n, step_ys)


def constant_solution(y0: np.ndarray, t0: float, t1: float) -> OdeSolution:
    """The dense output of a solve that takes no step (``t0 == t1``, or an empty ``y0``): ``y0``."""
    return OdeSolution(lambda t: np.broadcast_to(y0, (len(t), y0.size)), np.array([t0, t1]), y0.size)


def no_step_result(y0: np.ndarray, t0: float, t1: float, t_eval, dense_output: bool, n_events: int) -> OdeResult:
    """scipy's result for a solve that takes no step (an empty ``y0``, or ``t0 == t1``): ``t = [t0, t1]``
    (or ``t_eval``), ``y0`` at every time, no event."""
    ts = np.array([t0, t1]) if t_eval is None else np.asarray(t_eval, np.float64)
    return OdeResult(t=ts, y=np.repeat(y0[:, None], len(ts), axis=1),
                     sol=constant_solution(y0, t0, t1) if dense_output else None,
                     t_events=[np.zeros(0) for _ in range(n_events)] if n_events else None,
                     y_events=[np.zeros(0) for _ in range(n_events)] if n_events else None,
                     nfev=0, njev=0, nlu=0, status=0, message=MESSAGES[0], success=True)


def result(out, sol, mode, t0, t1, t_eval, n_events, max_steps, max_events, y0=None) -> OdeResult:
    """Build scipy's result from the host copies ``out`` (``{"ys", "scalars"}``, plus ``"ts"`` and the
    event records where the solve made them) and the device solution ``sol`` for ``dense_output`` (a
    solve without a step, ``t0 == t1``, has the constant ``y0`` as its dense output)."""
    status, t_final, last_dt, n_steps, nfev, njev, nlu = out["scalars"]
    status = int(status)
    ts = out["ts"] if t_eval is None else t_eval
    ys = out["ys"]
    n = int(n_steps)
    if mode in ("steps", "dense"):
        ts, ys = ts[: n + 1], ys[: n + 1]
    elif status != Status.SUCCESS:
        reached = ~np.isnan(ys).any(axis=1)
        ts, ys = ts[reached], ys[reached]
    if t_eval is not None and len(ts) == 0:
        ts, y = [], []                      # scipy's lists when no point of t_eval was reached
    else:
        y = ys.T
    res = OdeResult(t=ts, y=y, sol=None, t_events=None, y_events=None, nfev=int(nfev), njev=int(njev),
                    nlu=int(nlu))
    if sol is not None:
        steps = out["ts"][: n + 1]
        step_ys = out["ys"][: n + 1] if mode == "dense" else None
        res["sol"] = dense_solution(sol, steps, step_ys) if n else constant_solution(y0, t0, t1)
    if n_events:
        counts = out["event_count"]
        if np.any(counts > max_events):
            i = int(np.flatnonzero(counts > max_events)[0])
            raise ValueError(f"event {i} crossed zero {counts[i]} times, more than the {max_events} "
                             f"recorded; pass `max_events=` larger to `solve_ivp`.")
        res["t_events"] = [out["event_ts"][i, : counts[i]] for i in range(n_events)]
        res["y_events"] = [out["event_ys"][i, : counts[i]] if counts[i] else np.zeros(0)
                           for i in range(n_events)]
    if status in (Status.SUCCESS, Status.EVENT):
        code = 0 if status == Status.SUCCESS else 1
        res.update(status=code, message=MESSAGES[code], success=True)
    else:
        msg = describe(status, float(t_final), float(abs(last_dt)), max_steps)
        res.update(status=-1, message=msg[0].upper() + msg[1:], success=False)
    return res
