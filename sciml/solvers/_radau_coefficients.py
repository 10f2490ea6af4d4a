"""Coefficients of the 3-stage Radau IIA method (order 5), and the matrices that make its Newton
iteration cheap; each is checked here at import, so a mistyped number fails at once.

Sources: Hairer & Wanner, *Solving ODEs II* (2nd ed.), Sec. IV.5 (Table 5.6, the method) and Sec. IV.8
(the transformation of ``A^{-1}`` to its real eigenvalue and complex pair, eq. 8.15-8.19, and the
embedded error estimate, eq. 8.19-8.20); the constants ``DD1..DD3`` of their RADAU5 code. The
eigenvector matrix is computed from ``A`` rather than copied, so its normalisation is ours.
"""

from __future__ import annotations

import numpy as np

S6 = np.sqrt(6.0)
#: nodes: c_3 = 1, so the last stage is the step's end (stiffly accurate)
C = np.array([(4.0 - S6) / 10.0, (4.0 + S6) / 10.0, 1.0])
A = np.array([
    [(88.0 - 7.0 * S6) / 360.0, (296.0 - 169.0 * S6) / 1800.0, (-2.0 + 3.0 * S6) / 225.0],
    [(296.0 + 169.0 * S6) / 1800.0, (88.0 + 7.0 * S6) / 360.0, (-2.0 - 3.0 * S6) / 225.0],
    [(16.0 - S6) / 36.0, (16.0 + S6) / 36.0, 1.0 / 9.0]])
#: embedded error estimate (RADAU5's DD1..DD3): e.c = -1, e.c^2 = e.c^3 = 0, so that
#: ``f0 + (Z^T E) / h = O(h^3)`` for the stage increments ``Z_i = y(t + c_i h) - y(t) + O(h^6)``
E = np.array([-(13.0 + 7.0 * S6) / 3.0, (-13.0 + 7.0 * S6) / 3.0, -1.0 / 3.0])

A_INV = np.linalg.inv(A)
_vals, _vecs = np.linalg.eig(A_INV)
_real = int(np.argmin(np.abs(_vals.imag)))
_pair = int(np.argmax(_vals.imag))          # the eigenvalue with positive imaginary part
#: the real eigenvalue of A^{-1} (Hairer's 1 / gamma_0, about 3.6378)
GAMMA = float(_vals[_real].real)
_v_real = _vecs[:, _real].real / _vecs[2, _real].real
_v_pair = _vecs[:, _pair] / _vecs[2, _pair]
#: real basis in which A^{-1} is block diagonal: T^{-1} A^{-1} T = diag(GAMMA, B)
T = np.stack([_v_real, _v_pair.real, _v_pair.imag], axis=1)
TI = np.linalg.inv(T)
LAMBDA = TI @ A_INV @ T
B = LAMBDA[1:, 1:]
_mu, _q = np.linalg.eig(B)
_first = int(np.argmax(_mu.imag))
#: eigenvalue of B with positive imaginary part (the pair is MU, conj(MU); about 2.681 + 3.050i)
MU = complex(_mu[_first])
#: B = Q diag(MU, conj MU) Q^{-1}, the columns of Q complex conjugates (so a real right-hand side gives
#: conjugate solutions, and one complex LU serves a real state)
Q = np.stack([_q[:, _first], np.conj(_q[:, _first])], axis=1)
QI = np.linalg.inv(Q)
#: Z_i = sum_p P[i, p] q_p: the collocation polynomial y(t + theta h) = y + sum_p q_p theta^(p+1)
#: passes through (c_i, y + Z_i); V_INV maps the stages to its coefficients q
V_INV = np.linalg.inv(C[:, None] ** np.arange(1, 4)[None, :])


def _check() -> None:
    k = np.arange(1, 6)
    # order 5: b = A[2] (stiffly accurate) satisfies b.c^(k-1) = 1/k for k <= 5 (B(5))
    assert np.allclose(A[2] @ (C[:, None] ** (k - 1)), 1.0 / k, atol=1e-14)
    # stage order 3: A c^(k-1) = c^k / k for k <= 3 (C(3))
    for j in range(1, 4):
        assert np.allclose(A @ C ** (j - 1), C ** j / j, atol=1e-14)
    assert np.allclose([E @ C, E @ C ** 2, E @ C ** 3], [-1.0, 0.0, 0.0], atol=1e-13)
    assert np.allclose(LAMBDA[0, 1:], 0, atol=1e-12) and np.allclose(LAMBDA[1:, 0], 0, atol=1e-12)
    assert abs(LAMBDA[0, 0] - GAMMA) < 1e-12
    assert np.allclose(Q @ np.diag([MU, np.conj(MU)]) @ QI, B, atol=1e-12)


_check()
