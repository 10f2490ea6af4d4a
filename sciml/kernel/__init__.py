"""The generated-kernel backend of the solve loop: the vector field translated from its jaxpr to C (or
CUDA) with the whole adaptive solve of a trajectory in one function, compiled once and cached.

It takes what the XLA loop takes (`sciml._problem.Options` and the loop-form problem) and returns the
same result, or says why it does not serve the solve; `backend="c"` raises that reason and `"auto"`
falls back to the XLA loop (logged at debug level on the ``sciml.kernel`` logger). Every front door
reaches it through the pipeline: `sciml.solve` inside ``jit`` (an XLA custom call), `sciml.solve_ivp`
and `sciml.solve_ensemble` from the host.
"""

from sciml.kernel._build import solve_c
from sciml.kernel._callback import solve_python_field
from sciml.kernel._cupy import solve_cupy
from sciml.kernel._errors import BackendUnavailableError, CompileError, CompilerNotFoundError, UnsafeCacheError
from sciml.kernel._host import solve_on_host
from sciml.kernel._xla import (controller_unserved, fall_back, integrate_or_none, not_served, solver_unserved,
                               state_unserved, unserved)

__all__ = ["integrate_or_none", "solve_on_host", "solve_python_field", "solve_c", "solve_cupy", "unserved",
           "not_served", "solver_unserved", "state_unserved", "controller_unserved", "fall_back",
           "BackendUnavailableError", "CompileError", "CompilerNotFoundError", "UnsafeCacheError"]
