"""Ensembles: one ODE, many trajectories, on JAX (sharded over devices), C (CPU cores) or CUDA (CuPy).

`solve_ensemble` is also `sciml.solve_ensemble`; the guide is the "Ensembles" page of the docs.
"""

from sciml.kernel._errors import BackendUnavailableError, CompileError, CompilerNotFoundError, UnsafeCacheError
from sciml.kernel._ctypes import UnsupportedDtypeError
from sciml.ensemble._reductions import Counts, Extrema, Fold, Histogram, MeanVar, MinMax, Moments, Reduction
from sciml.ensemble._solution import EnsembleSolution
from sciml.ensemble._solve_ensemble import BACKENDS, solve_ensemble
from sciml.ensemble._streamed_result import StreamedEnsemble
from sciml.kernel._translate import UnsupportedPrimitiveError

__all__ = ["solve_ensemble", "EnsembleSolution", "BACKENDS", "UnsupportedPrimitiveError",
           "UnsupportedDtypeError", "BackendUnavailableError", "CompilerNotFoundError", "CompileError",
           "UnsafeCacheError", "StreamedEnsemble", "Reduction", "MeanVar", "MinMax", "Histogram", "Fold",
           "Moments", "Extrema", "Counts"]
