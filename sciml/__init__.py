"""sciml: scientific machine learning with differential equations, on JAX.

Importing sciml turns on JAX's x64 mode so that float64 input is never silently truncated to float32
(set ``SCIML_X64=0`` to opt out; float64 input then raises :class:`sciml.PrecisionError`).
"""

from sciml._config import apply_x64_policy as _apply_x64_policy

_apply_x64_policy()

from sciml._config import PrecisionError, x64_enabled  # noqa: E402
from sciml import adjoints, layers, solvers  # noqa: E402
from sciml._solve import solve  # noqa: E402
from sciml._solve_ivp import OdeResult, solve_ivp  # noqa: E402
from sciml.ensemble import EnsembleSolution, solve_ensemble  # noqa: E402
from sciml.io import load, save  # noqa: E402
from sciml import discovery, distributed, losses  # noqa: E402
from sciml.models import UDE, NeuralODE  # noqa: E402
from sciml.train import EarlyStopping, FitResult, Phase, fit  # noqa: E402
from sciml.solvers import Event, Solution, SolveError, Status  # noqa: E402

__version__ = "0.1.0"

__all__ = ["PrecisionError", "x64_enabled", "layers", "solvers", "adjoints", "solve", "solve_ivp",
           "solve_ensemble", "EnsembleSolution", "OdeResult", "Event", "Solution", "SolveError", "Status", "save", "load", "__version__",
           "NeuralODE", "UDE", "fit", "Phase", "EarlyStopping", "FitResult", "losses", "discovery", "distributed"]
