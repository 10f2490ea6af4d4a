"""sciml: scientific machine learning with differential equations, on JAX.

Importing sciml turns on JAX's x64 mode so that float64 input is never silently truncated to float32
(set ``SCIML_X64=0`` to opt out; float64 input then raises :class:`sciml.PrecisionError`).
"""

from sciml._config import apply_x64_policy as _apply_x64_policy

_apply_x64_policy()

from sciml._config import PrecisionError, x64_enabled  # noqa: E402
from sciml import layers  # noqa: E402

__version__ = "0.1.0"

__all__ = ["PrecisionError", "x64_enabled", "layers", "__version__"]
