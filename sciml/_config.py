"""The float64 policy (DESIGN.md principle 3).

Without JAX's x64 flag, float64 numpy input is silently truncated to float32. `import sciml` therefore
turns x64 on. Setting ``SCIML_X64=0`` in the environment opts out; then float64/complex128 input to a
sciml entry point raises :class:`PrecisionError` instead of being truncated.
"""

from __future__ import annotations

import os

import jax
import numpy as np

_OPT_OUT_VALUES = ("0", "false", "no", "off")


class PrecisionError(TypeError):
    """Raised when an input would be silently truncated to a lower precision."""


def _x64_requested() -> bool:
    return os.environ.get("SCIML_X64", "1").strip().lower() not in _OPT_OUT_VALUES


def apply_x64_policy() -> None:
    """Turn on JAX's x64 mode unless the user opted out with ``SCIML_X64=0``."""
    if _x64_requested():
        jax.config.update("jax_enable_x64", True)


def x64_enabled() -> bool:
    """Whether JAX currently keeps float64 values (``jax_enable_x64``)."""
    return bool(jax.config.jax_enable_x64)


_WIDE = {np.dtype(np.float64): "float32", np.dtype(np.complex128): "complex64"}


def check_precision(tree, name: str = "input") -> None:
    """Raise :class:`PrecisionError` if any leaf of ``tree`` is 64-bit while x64 is off.

    A no-op when x64 is on (the default after ``import sciml``). Call it on user input before any
    ``jnp.asarray`` so that nothing is truncated silently.
    """
    if x64_enabled():
        return
    for leaf in jax.tree_util.tree_leaves(tree):
        # Only host arrays can still hold 64-bit data: JAX arrays were already made with x64 off.
        if not isinstance(leaf, (np.ndarray, np.generic)):
            continue
        dtype = leaf.dtype
        if np.dtype(dtype) in _WIDE:
            raise PrecisionError(
                f"`{name}` has dtype {np.dtype(dtype).name}, but JAX's x64 mode is off "
                f"(SCIML_X64=0), so it would be silently truncated to {_WIDE[np.dtype(dtype)]}. "
                f"Unset SCIML_X64 (sciml enables x64 by default), or convert the input "
                f"explicitly with `.astype(np.{_WIDE[np.dtype(dtype)]})`."
            )
