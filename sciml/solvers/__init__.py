"""ODE solvers. Every method is registered in ``ALL``; the generic tests run over that registry."""

from sciml.solvers._base import AbstractSolver
from sciml.solvers._control import PIController
from sciml.solvers._events import Event
from sciml.solvers._solution import Solution
from sciml.solvers._status import SolveError, Status
from sciml.solvers.explicit import RK4, Bosh3, Dopri5, Dopri8, Euler, Heun, Midpoint, Tsit5, Vern7

#: every method, for the generic (convergence, dense output, dtype, adjoint) tests
EXPLICIT = (Euler, Midpoint, Heun, RK4, Bosh3, Tsit5, Dopri5, Dopri8, Vern7)
ALL = EXPLICIT

__all__ = ["AbstractSolver", "PIController", "Event", "Solution", "SolveError", "Status", "Euler",
           "Midpoint", "Heun", "RK4", "Bosh3", "Tsit5", "Dopri5", "Dopri8", "Vern7", "EXPLICIT", "ALL"]
