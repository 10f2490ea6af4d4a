"""The explicit Runge-Kutta methods. Each is its tableau plus a docstring; see ``_tableaus_*.py``."""

from __future__ import annotations

import dataclasses

from sciml.solvers import _tableaus_classic as classic
from sciml.solvers import _tableaus_dormand_prince as dormand_prince
from sciml.solvers import _tableaus_tsitouras as tsitouras
from sciml.solvers import _tableaus_verner as verner
from sciml.solvers._explicit_rk import ExplicitRK


@dataclasses.dataclass(frozen=True)
class Euler(ExplicitRK):
    """Forward Euler, order 1, fixed step only (``adaptive=False, dt0=...``)."""

    tableau = classic.EULER


@dataclasses.dataclass(frozen=True)
class Midpoint(ExplicitRK):
    """Explicit midpoint, order 2, fixed step only."""

    tableau = classic.MIDPOINT


@dataclasses.dataclass(frozen=True)
class Heun(ExplicitRK):
    """Heun's method, order 2, with Euler as the embedded error estimate."""

    tableau = classic.HEUN


@dataclasses.dataclass(frozen=True)
class RK4(ExplicitRK):
    """The classical fourth-order Runge-Kutta method, fixed step only."""

    tableau = classic.RK4


@dataclasses.dataclass(frozen=True)
class Bosh3(ExplicitRK):
    """Bogacki-Shampine 3(2), FSAL. Good for loose tolerances."""

    tableau = classic.BOSH3


@dataclasses.dataclass(frozen=True)
class Tsit5(ExplicitRK):
    """Tsitouras 5(4), FSAL, free 4th-order interpolant. The default non-stiff method."""

    tableau = tsitouras.TSIT5


@dataclasses.dataclass(frozen=True)
class Dopri5(ExplicitRK):
    """Dormand-Prince 5(4), FSAL, with Shampine's 4th-order dense output (scipy's RK45)."""

    tableau = dormand_prince.DOPRI5


@dataclasses.dataclass(frozen=True)
class Dopri8(ExplicitRK):
    """Dormand-Prince 8(5,3) (Hairer's DOP853) with its 7th-order dense output. For tight tolerances."""

    tableau = dormand_prince.DOPRI8


@dataclasses.dataclass(frozen=True)
class Vern7(ExplicitRK):
    """Verner's "most efficient" 7(6) pair with its 7th-order lazy interpolant. For tight tolerances."""

    tableau = verner.VERN7
