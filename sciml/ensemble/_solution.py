"""`EnsembleSolution`: what `sciml.solve_ensemble` returns, the same on every backend."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from sciml.solvers._status import SolveError, Status, describe, failed


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class EnsembleSolution:
    """The solutions of an ensemble; trajectory ``i`` is what ``sciml.solve`` gives for it.

    Attributes:
        ts: ``(n_trajectories, m)`` times of the saved states (``saveat=None``: ``m = 1``, the time
            each trajectory stopped).
        ys: saved states, the structure of one ``y0`` with leading axes ``(n_trajectories, m)``.
        t_final, y_final: where each trajectory stopped (``t1`` or a failure) and its state there.
        status: ``(n_trajectories,)`` :class:`~sciml.solvers.Status` codes (int32).
        stats: ``{"nfev", "naccept", "nreject"}``, each ``(n_trajectories,)`` int32.
        backend: the backend that solved it (``"jax"``, ``"c"`` or ``"cupy"``).

    Arrays are JAX arrays, except from ``backend="cupy"`` with CuPy inputs, which gives CuPy arrays.
    """

    ts: Any
    ys: Any
    t_final: Any
    y_final: Any
    status: Any
    stats: dict
    _last_dt: Any
    backend: str = dataclasses.field(metadata=dict(static=True), default="jax")
    _max_steps: int = dataclasses.field(metadata=dict(static=True), default=0)

    def __len__(self) -> int:
        return int(self.status.shape[0])

    @property
    def success(self):
        """True where a trajectory reached ``t1``."""
        return (self.status == Status.SUCCESS) | (self.status == Status.EVENT)

    def message(self) -> list[str]:
        """One explanation of ``status`` per trajectory (needs concrete values)."""
        status, t, dt = (_host(x).ravel() for x in (self.status, self.t_final, self._last_dt))
        time_dtype = str(_host(self.t_final).dtype)
        msgs = [describe(int(s), float(ti), float(abs(di)), self._max_steps, time_dtype=time_dtype)
                for s, ti, di in zip(status, t, dt)]
        return [m[0].upper() + m[1:] for m in msgs]

    def raise_if_failed(self) -> "EnsembleSolution":
        """Raise :class:`sciml.SolveError` naming the first failed trajectory, if any failed."""
        bad = np.flatnonzero(failed(_host(self.status)))
        if bad.size:
            msg = self.message()[bad[0]]
            raise SolveError(f"{bad.size} of {len(self)} trajectories failed; the first (index {bad[0]}): {msg}")
        return self


def _host(x) -> np.ndarray:
    """A NumPy copy of a JAX, NumPy or CuPy array."""
    if hasattr(x, "get") and hasattr(x, "__cuda_array_interface__"):
        return x.get()
    return np.asarray(x)
