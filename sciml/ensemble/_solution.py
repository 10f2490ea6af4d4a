"""`EnsembleSolution`: what `sciml.solve_ensemble` returns, the same on every backend."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

from sciml.solvers._status import Outcome


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class EnsembleSolution(Outcome):
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

    _always_list = True

    def __len__(self) -> int:
        return int(self.status.shape[0])
