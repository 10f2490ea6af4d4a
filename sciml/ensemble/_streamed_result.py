"""What a streamed `sciml.solve_ensemble` with ``output=`` or ``reduce=`` returns (`sciml.ensemble._streaming`
computes it chunk by chunk)."""

from __future__ import annotations

import dataclasses
from typing import Any

from sciml.solvers._status import SolveError


@dataclasses.dataclass(frozen=True)
class StreamedEnsemble:
    """What a streamed `sciml.solve_ensemble` with ``output=`` or ``reduce=`` returns.

    Attributes:
        value: ``reduce``'s result (e.g. `sciml.ensemble.Moments`), or without ``reduce`` the outputs of
            every trajectory concatenated in trajectory order (NumPy arrays in host memory, leading axis
            ``n_trajectories``).
        status_counts: ``{status name: number of trajectories}`` over the whole ensemble, for every
            :class:`sciml.Status` (reductions fold only the successful trajectories; these say how many
            were left out and why).
        n_trajectories: the number of trajectories solved.
        first_failure: the index of the first failed trajectory, or None.
    """

    value: Any
    status_counts: dict
    n_trajectories: int
    first_failure: int | None
    failure_message: str | None = None

    @property
    def success(self) -> bool:
        """True when every trajectory reached ``t1`` or a terminal event."""
        return self.first_failure is None

    def message(self) -> str:
        """A summary of the statuses, naming the first failed trajectory and why it failed."""
        if self.first_failure is None:
            return f"All {self.n_trajectories} trajectories succeeded."
        failed = sum(c for name, c in self.status_counts.items() if name not in ("SUCCESS", "EVENT"))
        return (f"{failed} of {self.n_trajectories} trajectories failed ({nonzero_counts(self.status_counts)}); the "
                f"first (index {self.first_failure}): {self.failure_message}")

    def raise_if_failed(self) -> "StreamedEnsemble":
        """Raise :class:`sciml.SolveError` if any trajectory failed; return ``self`` otherwise."""
        if not self.success:
            raise SolveError(self.message())
        return self


def nonzero_counts(counts: dict) -> str:
    """``"NAME: count, ..."`` for the statuses that occurred."""
    return ", ".join(f"{name}: {c}" for name, c in counts.items() if c)
