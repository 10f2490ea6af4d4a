"""The standard stiff test set, written once for JAX (``xp=jnp``, what sciml integrates) and numpy
(``xp=np``, what scipy integrates for the references).

Definitions follow Hairer & Wanner, *Solving ODEs II* (2nd ed.), Sec. IV.10, and the Bari test set
(F. Mazzia, C. Magherini et al., "Test Set for IVP Solvers", https://archimede.uniba.it/~testset/):
ROBER, HIRES, OREGO (there on [0, 360]; here [0, 30]), Van der Pol with mu = 1e3 (unscaled time) and
POLLU. Each problem carries ``floor``: the component size below which a relative error is not asked
for. Tests use ``atol = rtol * floor`` and measure the final-state error as
``max_i |y_i - ref_i| / (|ref_i| + floor_i)`` (a relative error that does not blow up for components
near zero). References: ``stiff_references.json``, made by ``make_stiff_references.py``.
"""

from __future__ import annotations

import json
import pathlib
from typing import Callable, NamedTuple

import jax.numpy as jnp
import numpy as np


class StiffProblem(NamedTuple):
    name: str
    f: Callable          # f(t, y, args, xp=jnp)
    y0: np.ndarray
    t1: float
    args: object
    floor: np.ndarray    # per-component size below which the error counts as absolute


def rober(t, y, k, xp=jnp):
    """Robertson's autocatalytic reaction (Robertson 1966): rate constants k = (0.04, 3e7, 1e4)."""
    return xp.stack([-k[0] * y[0] + k[2] * y[1] * y[2],
                     k[0] * y[0] - k[2] * y[1] * y[2] - k[1] * y[1] ** 2,
                     k[1] * y[1] ** 2])


def hires(t, y, args, xp=jnp):
    """High Irradiance RESponse of plant morphogenesis (Schäfer 1975), 8 species."""
    return xp.stack([
        -1.71 * y[0] + 0.43 * y[1] + 8.32 * y[2] + 0.0007,
        1.71 * y[0] - 8.75 * y[1],
        -10.03 * y[2] + 0.43 * y[3] + 0.035 * y[4],
        8.32 * y[1] + 1.71 * y[2] - 1.12 * y[3],
        -1.745 * y[4] + 0.43 * y[5] + 0.43 * y[6],
        -280.0 * y[5] * y[7] + 0.69 * y[3] + 1.71 * y[4] - 0.43 * y[5] + 0.69 * y[6],
        280.0 * y[5] * y[7] - 1.81 * y[6],
        -280.0 * y[5] * y[7] + 1.81 * y[6]])


def orego(t, y, args, xp=jnp):
    """The Oregonator (Field & Noyes 1974), the Belousov-Zhabotinskii reaction."""
    s, w, q = 77.27, 0.161, 8.375e-6
    return xp.stack([s * (y[1] + y[0] * (1.0 - q * y[0] - y[1])),
                     (y[2] - (1.0 + y[0]) * y[1]) / s,
                     w * (y[0] - y[2])])


def van_der_pol(t, y, mu, xp=jnp):
    """Van der Pol's oscillator y'' = mu (1 - y^2) y' - y as a first-order system."""
    return xp.stack([y[1], mu * (1.0 - y[0] ** 2) * y[1] - y[0]])


#: POLLU rate constants (Verwer 1994)
POLLU_K = np.array([.35, .266e2, .123e5, .86e-3, .82e-3, .15e5, .13e-3, .24e5, .165e5, .9e4, .22e-1, .12e5,
                    .188e1, .163e5, .48e7, .35e-3, .175e-1, .1e9, .444e12, .124e4, .21e1, .578e1, .474e-1,
                    .178e4, .312e1])


# Reaction j consumes species _A[j] (and _B[j]; 0 means none) at rate k_j y_A y_B (1-based species).
_POLLU_A = np.array([1, 2, 5, 7, 7, 7, 9, 9, 11, 11, 13, 10, 14, 1, 3, 4, 4, 16, 16, 17, 19, 19, 1, 19, 20])
_POLLU_B = np.array([0, 4, 2, 0, 0, 6, 0, 6, 2, 1, 0, 2, 0, 6, 0, 0, 0, 0, 0, 6, 0, 0, 4, 1, 0])
# dy_i/dt = sum_j S[i, j] r_j, species by species as in Verwer (1994): {reaction: coefficient}.
_POLLU_S = np.zeros((20, 25))
for _i, _terms in enumerate([
        {1: -1, 10: -1, 14: -1, 23: -1, 24: -1, 2: 1, 3: 1, 9: 1, 11: 1, 12: 1, 22: 1, 25: 1},
        {2: -1, 3: -1, 9: -1, 12: -1, 1: 1, 21: 1}, {15: -1, 1: 1, 17: 1, 19: 1, 22: 1},
        {2: -1, 16: -1, 17: -1, 23: -1, 15: 1}, {3: -1, 4: 2, 6: 1, 7: 1, 13: 1, 20: 1},
        {6: -1, 8: -1, 14: -1, 20: -1, 3: 1, 18: 2}, {4: -1, 5: -1, 6: -1, 13: 1}, {4: 1, 5: 1, 6: 1, 7: 1},
        {7: -1, 8: -1}, {12: -1, 7: 1, 9: 1}, {9: -1, 10: -1, 8: 1, 11: 1}, {9: 1}, {11: -1, 10: 1},
        {13: -1, 12: 1}, {14: 1}, {18: -1, 19: -1, 16: 1}, {20: -1}, {20: 1},
        {21: -1, 22: -1, 24: -1, 23: 1, 25: 1}, {25: -1, 24: 1}]):
    for _j, _c in _terms.items():
        _POLLU_S[_i, _j - 1] = _c


def pollu(t, y, k, xp=jnp):
    """The air-pollution model of the Dutch RIVM (Verwer 1994): 20 species, 25 reactions."""
    padded = xp.concatenate([xp.ones(1, y.dtype), y])           # index 0 is the "no second species" 1
    rates = k * padded[_POLLU_A] * padded[_POLLU_B]
    return xp.asarray(_POLLU_S, y.dtype) @ rates


_POLLU_Y0 = np.zeros(20)
_POLLU_Y0[[1, 3, 6, 7, 8, 16]] = [0.2, 0.04, 0.1, 0.3, 0.01, 0.007]

PROBLEMS = {
    "rober": StiffProblem("rober", rober, np.array([1.0, 0.0, 0.0]), 1e5, np.array([0.04, 3e7, 1e4]),
                          np.array([1e-4, 1e-10, 1e-4])),
    "hires": StiffProblem("hires", hires, np.array([1.0, 0, 0, 0, 0, 0, 0, 0.0057]), 321.8122, np.zeros(()),
                          np.full(8, 1e-4)),
    "orego": StiffProblem("orego", orego, np.array([1.0, 2.0, 3.0]), 30.0, np.zeros(()), np.full(3, 1e-2)),
    "vdp": StiffProblem("vdp", van_der_pol, np.array([2.0, 0.0]), 3000.0, np.asarray(1e3), np.full(2, 1e-2)),
    "pollu": StiffProblem("pollu", pollu, _POLLU_Y0, 60.0, POLLU_K, np.full(20, 1e-7)),
}

REFERENCE_FILE = pathlib.Path(__file__).with_name("stiff_references.json")


def reference(name: str) -> np.ndarray:
    """The stored reference final state of a problem (see ``make_stiff_references.py``)."""
    return np.asarray(json.loads(REFERENCE_FILE.read_text())["problems"][name]["y_final"])


def relative_error(y, ref, floor) -> float:
    """``max_i |y_i - ref_i| / (|ref_i| + floor_i)``."""
    y, ref = np.asarray(y, np.float64), np.asarray(ref, np.float64)
    return float(np.max(np.abs(y - ref) / (np.abs(ref) + floor)))
