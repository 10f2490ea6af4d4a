"""scipy's conventions for `sciml.solve_ivp`'s arguments (``args``, ``t_span``, ``rtol``'s floor, an
event's ``terminal``, a constant ``jac``), with scipy's exception types and messages; the rest of a
`solve_ivp` call is checked by the one validator (`sciml._validate`) like every front door's."""

from __future__ import annotations

import math
import warnings

import numpy as np


def scipy_args(args) -> tuple:
    """scipy's ``args``: None, or anything that unpacks (else scipy's TypeError)."""
    if args is None:
        return ()
    try:
        return tuple(args)
    except TypeError as err:
        raise TypeError(f"Supplied 'args' cannot be unpacked. Please supply `args` as a tuple (e.g. "
                        f"`args=({args!r},)`).") from err


def scipy_t_span(t_span) -> tuple[float, float]:
    """``(t0, t1)`` as floats: ``t0`` finite, ``t1`` finite or infinite (scipy integrates towards it)."""
    try:
        t0, t1 = map(float, t_span)
    except (TypeError, ValueError) as err:
        raise ValueError(f"`t_span` must be a pair of numbers (t0, t1); got {t_span!r}.") from err
    if not math.isfinite(t0) or math.isnan(t1):
        raise ValueError(f"`t_span` must have a finite t0 and a t1 that is a number (it may be infinite); got "
                         f"({t0}, {t1}).")
    return t0, t1


#: scipy's smallest ``rtol``
RTOL_FLOOR = 100 * float(np.finfo(np.float64).eps)


def scipy_rtol(rtol):
    """scipy's floor on ``rtol``: positive values below ``100 * eps`` are raised to it, with its warning
    (zero, negative and NaN values are refused later, naming the argument)."""
    floor = RTOL_FLOOR
    if isinstance(rtol, (float, np.floating)) and not 0 < rtol < floor:
        return rtol              # a scalar above the floor (or one refused later): no arrays per call
    if np.any((np.asarray(rtol) > 0) & (np.asarray(rtol) < floor)):
        warnings.warn(f"At least one element of `rtol` is too small. Setting `rtol = np.maximum(rtol, {floor})`.",
                      UserWarning, stacklevel=3)
        return np.maximum(rtol, floor)
    return rtol


def scipy_terminal(event, i: int) -> int:
    """An event's ``terminal`` attribute by scipy's rule: None/False/0 never, True the first crossing,
    a positive int ``k`` the ``k``-th; anything else is refused."""
    terminal = getattr(event, "terminal", None)
    if terminal is None or terminal is False or (isinstance(terminal, (int, float)) and terminal == 0):
        return 0
    if isinstance(terminal, (bool, int, float, np.number)) and int(terminal) == terminal and terminal > 0:
        return int(terminal)
    raise ValueError(f"The `terminal` attribute of each event must be a boolean or positive integer; event {i} "
                     f"({getattr(event, '__name__', event)!r}) has terminal={terminal!r}.")


def scipy_jac_matrix(jac, n: int) -> np.ndarray:
    """A constant ``jac`` (an array or a scipy sparse matrix) as a dense ``(n, n)`` array."""
    matrix = np.asarray(jac.toarray() if hasattr(jac, "toarray") else jac)
    if matrix.shape != (n, n) or not np.issubdtype(matrix.dtype, np.number):
        raise ValueError(f"`jac` must be a callable jac(t, y, *args) or a constant (n, n) = ({n}, {n}) array or "
                         f"sparse matrix; got {matrix.dtype.name} of shape {matrix.shape}.")
    return matrix
