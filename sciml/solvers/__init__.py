"""ODE solvers. Every method is registered in ``ALL``; the generic tests run over that registry."""

from sciml.solvers._base import AbstractSolver
from sciml.solvers._control import IController, PIController, PIDController
from sciml.solvers._events import Event
from sciml.solvers._solution import Solution
from sciml.solvers._status import SolveError, Status
from sciml.solvers.autoswitch import AutoSwitch
from sciml.solvers.bdf import BDF
from sciml.solvers.esdirk import Kvaerno5
from sciml.solvers.explicit import RK4, Bosh3, Dopri5, Dopri8, Euler, Heun, Midpoint, Tsit5, Vern7
from sciml.solvers.radau import RadauIIA5
from sciml.solvers.rosenbrock import ROS34PW2, Rodas5P, Rosenbrock23

#: every method, for the generic (convergence, dense output, dtype, adjoint) tests
EXPLICIT = (Euler, Midpoint, Heun, RK4, Bosh3, Tsit5, Dopri5, Dopri8, Vern7)
#: the stiff (implicit and linearly implicit) methods
STIFF = (Rodas5P, Rosenbrock23, ROS34PW2, Kvaerno5, BDF, RadauIIA5)
ALL = EXPLICIT + STIFF
#: methods built from two registered ones (covered by their own tests, tests/solvers/test_autoswitch.py)
SWITCHING = (AutoSwitch,)

__all__ = ["AbstractSolver", "PIController", "IController", "PIDController", "Event", "Solution", "SolveError", "Status", "Euler",
           "Midpoint", "Heun", "RK4", "Bosh3", "Tsit5", "Dopri5", "Dopri8", "Vern7", "Rodas5P", "Rosenbrock23", "ROS34PW2",
           "Kvaerno5", "BDF", "RadauIIA5", "AutoSwitch", "EXPLICIT", "STIFF", "SWITCHING", "ALL"]
