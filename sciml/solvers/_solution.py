"""The result of a solve: a pytree, so it can be returned from ``jit`` and batched by ``vmap``."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from sciml._validate import concrete
from sciml.solvers._base import evaluate_dense
from sciml.solvers._status import Outcome, Status, host


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Solution(Outcome):
    """What ``sciml.solve`` returns.

    Attributes:
        ts: times of the saved states, shape ``(m,)`` (``saveat=None``: ``(1,)``, the final time).
        ys: saved states, the structure of ``y0`` with a leading axis of length ``m``.
        t_final, y_final: where the solve stopped (``t1``, a terminal event, or a failure) and the
            state there.
        status: :class:`~sciml.solvers.Status` code (int32, one per trajectory under ``vmap``).
        stats: ``{"nfev", "naccept", "nreject"}``, plus ``"njev", "nlu"`` for stiff solvers,
            ``"nswitch", "nstiff"`` for ``AutoSwitch`` (switches made, accepted stiff steps) and
            ``"init_adjusted"`` (and ``"init_residual"`` on a failed initialisation) with a singular
            ``mass_matrix``.
        event_t: ``(n_events,)`` time of each event's first crossing, NaN where it did not occur.
        event_ts, event_ys: every recorded crossing per event (``(n_events, R)``), NaN-padded.
        event_count: ``(n_events,)`` number of crossings found.
        event: index of the terminal event that stopped the solve, ``-1`` if none.

    Under ``jit``, ``saveat="steps"``/``"dense"`` buffers have length ``max_steps + 1`` and are padded
    with ``inf`` times and NaN states past the last step; outside ``jit`` they are trimmed.
    """

    ts: Any
    ys: Any
    t_final: Any
    y_final: Any
    status: Any
    stats: dict
    event_t: Any
    event_ts: Any
    event_ys: Any
    event_count: Any
    event: Any
    # Dense output (saveat="dense"): step start times (in the loop's forward time), sizes, polynomials.
    _dense_t: Any
    _dense_dt: Any
    _dense_coeffs: Any
    _n_steps: Any
    _time_sign: Any
    _last_dt: Any
    _unflatten: Callable = dataclasses.field(metadata=dict(static=True), default=None)
    _max_steps: int = dataclasses.field(metadata=dict(static=True), default=0)
    _solver_stiff: bool = dataclasses.field(metadata=dict(static=True), default=False)
    # Set by `sciml.solve` outside jit when an explicit solve failed where the problem is stiff.
    _looks_stiff: bool = dataclasses.field(metadata=dict(static=True), default=False)

    def _hints(self) -> dict:
        hints = dict(solver_stiff=self._solver_stiff, looks_stiff=self._looks_stiff)
        residual = self.stats.get("init_residual") if isinstance(self.stats, dict) else None
        if residual is not None and np.ndim(residual) == 0:   # a DAE's initialisation (one trajectory)
            hints["init_residual"] = float(host(residual))
        return hints

    # -- dense output -------------------------------------------------------------------------
    def evaluate(self, t, extrapolate: bool = False):
        """The solution at time(s) ``t`` (any shape) from the dense output; needs ``saveat="dense"``.

        Works under ``jit``; returns the structure of ``y0`` with leading axes ``t.shape``, in the dtypes
        of the solution. Only the solved span is served: from ``t0`` to ``t_final`` (``t1``, or where a
        terminal event or a failure stopped the solve), both ends included, in either direction of
        time. The dense output is not extrapolated past it unless ``extrapolate=True`` (then the first
        or last step's polynomial is, as scipy's ``OdeSolution`` does): a concrete ``t`` outside raises,
        and under ``jit`` (a traced ``t`` or solution) the times outside give NaN.

        Raises:
            ValueError: if the solve was not made with ``saveat="dense"``, or a concrete ``t`` lies
                outside the solved span (the message names the first such time and the span).
        """
        if self._dense_coeffs is None:
            raise ValueError("`sol.evaluate(t)` needs the dense output: solve with `saveat=\"dense\"`.")
        t = jnp.asarray(t)
        flat, inside = _evaluate_flat(self._dense_t, self._dense_dt, self._dense_coeffs, self._n_steps,
                                      self._time_sign, self.t_final, t, extrapolate)
        known = None if extrapolate else concrete(inside)
        if known is not None and not known.all():
            self._outside(np.asarray(t), known)
        return unflatten_batched(self._unflatten, flat, t.ndim)

    def _outside(self, t: np.ndarray, inside: np.ndarray):
        """Raise for the first of the concrete times ``t`` that is not ``inside`` the solved span."""
        first = np.unravel_index(int(np.flatnonzero(~inside.ravel())[0]), inside.shape)
        where = f"t[{', '.join(map(str, first))}]" if t.ndim else "t"
        t0 = np.asarray(self._dense_t[0] * self._time_sign).astype(self._dense_t.dtype)[()]  # the time dtype
        t_final, status = np.asarray(self.t_final)[()], int(np.asarray(self.status))
        why, fix = {
            Status.SUCCESS: ("the end of `t_span`", "or solve over a longer `t_span`"),
            Status.EVENT: ("a terminal event stopped the solve there", "or make the event non-terminal"),
        }.get(status, ("the solve failed there; see `sol.message()`", "or fix the failure"))
        raise ValueError(f"`sol.evaluate(t)`: {where}={t[first]!s} is outside the solved span from t0={t0!s} "
                         f"to t_final={t_final!s} ({why}); the dense output is not extrapolated. Evaluate inside "
                         f"the span (its ends included), {fix}.")


@functools.partial(jax.jit, static_argnums=7)
def _evaluate_flat(dense_t, dense_dt, coeffs, n_steps, time_sign, t_final, t, extrapolate: bool):
    """The dense output at ``t`` as flat states (NaN outside the solved span unless ``extrapolate``), and
    where ``t`` is inside. One program: called eagerly, a solution's ``evaluate`` compiles once per shape
    rather than once per array operation."""
    dtype = dense_t.dtype
    s = (t * time_sign).astype(dtype)  # forward time, where the steps are recorded
    inside = (s >= dense_t[0]) & (s <= (t_final * time_sign).astype(dtype))
    flat = evaluate_dense(dense_t, dense_dt, coeffs, n_steps, s)
    if not extrapolate:
        flat = jnp.where(inside[..., None], flat, jnp.nan)
    return flat, inside


def unflatten_batched(unflatten, flat, nbatch: int):
    """Unflatten an array of flat states with ``nbatch`` leading axes."""
    fn = unflatten
    for _ in range(nbatch):
        fn = jax.vmap(fn)
    return fn(flat)
