"""The classical explicit Runge-Kutta methods: Euler, midpoint, Heun, RK4 and Bogacki-Shampine 3(2).

Coefficients only, each with its source; how they are written and checked: ``_tableau.py``.
"""

from __future__ import annotations

from sciml.solvers._tableau import ButcherTableau

__all__ = ["EULER", "MIDPOINT", "HEUN", "RK4", "BOSH3"]


# Forward Euler. Hairer, Norsett & Wanner (HNW), Solving ODEs I, 2nd ed., Sec. II.1.
EULER = ButcherTableau(
    name="euler",
    c=(0.0,),
    a=((),),
    b=(1.0,),
    order=1,
    source="Euler (1768); Hairer, Norsett & Wanner, Solving ODEs I, 2nd ed., Sec. II.1.",
)

# Explicit midpoint rule (Runge 1895). HNW I, Sec. II.1.
MIDPOINT = ButcherTableau(
    name="midpoint",
    c=(0.0, 1 / 2),
    a=((), (1 / 2,)),
    b=(0.0, 1.0),
    order=2,
    source="Runge (1895); Hairer, Norsett & Wanner, Solving ODEs I, 2nd ed., Sec. II.1.",
)

# Heun's method (explicit trapezoidal rule, Heun 1900), HNW I, Sec. II.1. Embedded: forward
# Euler, b_hat = (1, 0), so b_err = b - b_hat = (-1/2, 1/2); as diffrax `_solver/heun.py` (which
# stores the opposite sign; only |error| matters to a controller).
HEUN = ButcherTableau(
    name="heun",
    c=(0.0, 1.0),
    a=((), (1.0,)),
    b=(1 / 2, 1 / 2),
    order=2,
    b_err=(-1 / 2, 1 / 2),
    error_order=1,
    source="Heun (1900); Hairer, Norsett & Wanner, Solving ODEs I, 2nd ed., Sec. II.1; Euler "
    "embedded as in diffrax `Heun`.",
)

# The classical Runge-Kutta method (Kutta 1901). HNW I, Sec. II.1.
RK4 = ButcherTableau(
    name="rk4",
    c=(0.0, 1 / 2, 1 / 2, 1.0),
    a=((), (1 / 2,), (0.0, 1 / 2), (0.0, 0.0, 1.0)),
    b=(1 / 6, 1 / 3, 1 / 3, 1 / 6),
    order=4,
    source="Kutta (1901); Hairer, Norsett & Wanner, Solving ODEs I, 2nd ed., Sec. II.1.",
)

# Bogacki & Shampine, "A 3(2) pair of Runge-Kutta formulas", Appl. Math. Lett. 2(4), 321-325 (1989).
# b_hat = (7/24, 1/4, 1/3, 1/8). Cross-checked: scipy `_ivp/rk.py` RK23 (C, A, B; its E = -b_err)
# and diffrax `_solver/bosh3.py`. Dense output: cubic Hermite interpolation of (y0, f0, y1, f1),
# free thanks to FSAL and of order 3; written out as b_i(theta) it is scipy RK23's `P` matrix.
_BOSH3_B = (2 / 9, 1 / 3, 4 / 9, 0.0)
BOSH3 = ButcherTableau(
    name="bosh3",
    c=(0.0, 1 / 2, 3 / 4, 1.0),
    a=((), (1 / 2,), (0.0, 3 / 4), _BOSH3_B[:3]),
    b=_BOSH3_B,
    order=3,
    b_err=(-5 / 72, 1 / 12, 1 / 9, -1 / 8),
    error_order=2,
    fsal=True,
    b_dense=(
        (1.0, -4 / 3, 5 / 9),
        (0.0, 1.0, -2 / 3),
        (0.0, 4 / 3, -8 / 9),
        (0.0, -1.0, 1.0),
    ),
    dense_order=3,
    source="Bogacki & Shampine, Appl. Math. Lett. 2(4):321-325 (1989); dense output: cubic Hermite "
    "(scipy RK23 `P`).",
)
