"""Two index-1 DAEs of the Bari test set, ``M y' = f(t, y, args)`` with a constant ``M``, and their
published reference solutions at ``t1``.

Source: F. Mazzia and C. Magherini, "Test Set for Initial Value Problem Solvers", release 2.4,
University of Bari, 2008 (https://archimede.uniba.it/~testset/), Fortran sources ``transamp.f``
(revision 1.3, 2006) and ``chemakzo.f``: the constants, ``M``, ``y0`` and the reference values below
are those files' (``feval``/``meval``/``init``/``solut``; the references were computed there with PSIDE
at rtol = atol = 1e-14 for the amplifier and 1e-19 for Akzo Nobel, in Cray double precision).

- ``transamp``: the two-stage transistor amplifier (Hairer & Wanner, *Solving ODEs II*, Sec. VI.1 /
  RADAU5's example): 8 node voltages, a singular ``M`` that is tridiagonal and not diagonal (rank 5:
  three algebraic equations hidden in sums of rows, no zero row or column). ``y0`` is the test set's
  consistent starting point (``consis = .true.``); ``init="solve"`` finds the algebraic equations from
  ``M``'s left null space (the sums ``f_1 + f_2``, ``f_4 + f_5``, ``f_7 + f_8``).
- ``chemakzo``: the chemical Akzo Nobel problem, 6 species, ``M = diag(1, 1, 1, 1, 1, 0)``,
  ``y6 = Ks y1 y4`` algebraic; ``y0[5] = Ks y1(0) y4(0)`` consistent.

Both are written for float64: the test set asks for tolerances far below float32's resolution, and
the amplifier's ``exp((y2 - y3) / 0.026)`` amplifies rounding by about 40 per unit of voltage error.
Each problem carries ``floor``: the component size below which the error is absolute (the tests use
``atol = rtol * floor`` and ``max_i |y_i - ref_i| / (|ref_i| + floor_i)``, see `relative_error`).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax.numpy as jnp
import numpy as np


class DAEProblem(NamedTuple):
    name: str
    f: Callable                 # f(t, y, args) -> (n,), jax.numpy
    mass_matrix: np.ndarray     # (n, n), constant
    y0: np.ndarray              # (n,), consistent at t = 0
    t1: float                   # the integration runs over [0, t1]
    reference: np.ndarray       # (n,), the published y(t1)
    floor: np.ndarray           # (n,), component size below which the error counts as absolute
    init: str                   # `sciml.solve(init=...)`


# -- transistor amplifier (transamp.f) ------------------------------------------------------------------
TRANSAMP_UB, TRANSAMP_UF, TRANSAMP_ALPHA, TRANSAMP_BETA = 6.0, 0.026, 0.99, 1e-6
TRANSAMP_R0, TRANSAMP_R = 1000.0, 9000.0          # R1 = ... = R9 = 9000
TRANSAMP_C = (1e-6, 2e-6, 3e-6, 4e-6, 5e-6)       # C1 ... C5


def transamp(t, y, args):
    """The transistor amplifier's right-hand side (``feval`` of transamp.f); ``args`` is unused."""
    ub, uf, alpha, beta, r0, r = (TRANSAMP_UB, TRANSAMP_UF, TRANSAMP_ALPHA, TRANSAMP_BETA, TRANSAMP_R0,
                                  TRANSAMP_R)
    ue = 0.1 * jnp.sin(200.0 * jnp.pi * t)
    g1 = beta * (jnp.exp((y[1] - y[2]) / uf) - 1.0)      # transistor currents
    g2 = beta * (jnp.exp((y[4] - y[5]) / uf) - 1.0)
    return jnp.stack([(y[0] - ue) / r0,
                      y[1] / r + (y[1] - ub) / r + (1.0 - alpha) * g1,
                      y[2] / r - g1,
                      (y[3] - ub) / r + alpha * g1,
                      y[4] / r + (y[4] - ub) / r + (1.0 - alpha) * g2,
                      y[5] / r - g2,
                      (y[6] - ub) / r + alpha * g2,
                      y[7] / r])


def _transamp_mass() -> np.ndarray:
    # meval of transamp.f (banded, one sub- and one superdiagonal): capacitor C1 couples nodes 1-2,
    # C3 nodes 4-5, C5 nodes 7-8; C2 and C4 ground nodes 3 and 6.
    c1, c2, c3, c4, c5 = TRANSAMP_C
    m = np.zeros((8, 8))
    for (i, j), c in {(0, 1): c1, (3, 4): c3, (6, 7): c5}.items():
        m[i, i] = m[j, j] = -c
        m[i, j] = m[j, i] = c
    m[2, 2], m[5, 5] = -c2, -c4
    return m


_UB_HALF = TRANSAMP_UB / 2.0                       # ub / (r2 / r1 + 1) with r1 = r2
TRANSAMP = DAEProblem(
    "transamp", transamp, _transamp_mass(),
    np.array([0.0, _UB_HALF, _UB_HALF, TRANSAMP_UB, _UB_HALF, _UB_HALF, TRANSAMP_UB, 0.0]), 0.2,
    np.array([-0.5562145012262709e-2, 0.3006522471903042e1, 0.2849958788608128e1, 0.2926422536206241e1,
              0.2704617865010554e1, 0.2761837778393145e1, 0.4770927631616772e1, 0.1236995868091548e1]),
    np.full(8, 1e-3),
    "solve")   # M has no zero row: its algebraic equations are sums of rows (N^T f over M's left null space)


# -- chemical Akzo Nobel (chemakzo.f) --------------------------------------------------------------------
AKZO_K1, AKZO_K2, AKZO_K3, AKZO_K4 = 18.7, 0.58, 0.09, 0.42
AKZO_KBIG, AKZO_KLA, AKZO_KS, AKZO_PCO2, AKZO_H = 34.4, 3.3, 115.83, 0.9, 737.0


def chemakzo(t, y, args):
    """The Akzo Nobel problem's right-hand side (``f`` of chemakzo.f); the last row is algebraic."""
    r1 = AKZO_K1 * y[0] ** 4 * jnp.sqrt(y[1])
    r2 = AKZO_K2 * y[2] * y[3]
    r3 = AKZO_K2 / AKZO_KBIG * y[0] * y[4]
    r4 = AKZO_K3 * y[0] * y[3] ** 2
    r5 = AKZO_K4 * y[5] ** 2 * jnp.sqrt(y[1])
    f_in = AKZO_KLA * (AKZO_PCO2 / AKZO_H - y[1])        # CO2 inflow
    return jnp.stack([-2.0 * r1 + r2 - r3 - r4,
                      -0.5 * r1 - r4 - 0.5 * r5 + f_in,
                      r1 - r2 + r3,
                      -r2 + r3 - 2.0 * r4,
                      r2 - r3 + r5,
                      AKZO_KS * y[0] * y[3] - y[5]])


CHEMAKZO = DAEProblem(
    "chemakzo", chemakzo, np.diag([1.0, 1.0, 1.0, 1.0, 1.0, 0.0]),
    np.array([0.444, 0.00123, 0.0, 0.007, 0.0, AKZO_KS * 0.444 * 0.007]), 180.0,
    np.array([0.1150794920661702, 0.1203831471567715e-2, 0.1611562887407974, 0.3656156421249283e-3,
              0.1708010885264404e-1, 0.4873531310307455e-2]),
    np.full(6, 1e-6),
    "solve")

DAE_PROBLEMS = {p.name: p for p in (TRANSAMP, CHEMAKZO)}
