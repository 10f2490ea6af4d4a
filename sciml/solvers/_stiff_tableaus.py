"""Coefficients of the one-step stiff methods, each with its source (checked in ``_stiff_tableau.py``)."""

from __future__ import annotations

import math

import numpy as np

from sciml.solvers._stiff_tableau import ESDIRKTableau, RosenbrockTableau


def _rodas_dense(m, H):
    """Dense-output rows ``P[1..4]`` from Rodas' form ``y(theta) = (1 - theta) y0 + theta (y1 + (1 - theta)
    (k1 + theta (k2 + theta k3)))`` with ``k_r = sum_j H[r][j] u_j`` (OrdinaryDiffEq.jl's Rodas4/5
    interpolant), expanded in powers of theta."""
    h1, h2, h3 = H
    return (tuple(x + y for x, y in zip(m, h1)), tuple(y - x for x, y in zip(h1, h2)),
            tuple(y - x for x, y in zip(h2, h3)), tuple(-x for x in h3))


# Rodas5P: G. Steinebach, "Construction of Rosenbrock-Wanner method Rodas5P and numerical benchmarks
# within the Julia Differential Equations package", BIT Numer. Math. 63 (2023) 27. Coefficients as in
# OrdinaryDiffEq.jl (`Rodas5PTableau`, rosenbrock_tableaus.jl). Stiffly accurate: stages 6-8 sit at
# t + h; the last stage increment u_8 is the error estimate (the embedded solution is stage 8's point).
_R5P_A6 = (-7.502846399306121, 2.561846144803919, -11.627539656261098, -0.18268767659942256,
           0.030198172008377946)
_R5P_H = (
    (25.948786856663858, -2.5579724845846235, 10.433815404888879, -2.3679251022685204, 0.524948541321073,
     1.1241088310450404, 0.4272876194431874, -0.17202221070155493),
    (-9.91568850695171, -0.9689944594115154, 3.0438037242978453, -24.495224566215796, 20.176138334709044,
     15.98066361424651, -6.789040303419874, -6.710236069923372),
    (11.419903575922262, 2.8879645146136994, 72.92137995996029, 80.12511834622643, -52.072871366152654,
     -59.78993625266729, -0.15582684282751913, 4.883087185713722),
)
_R5P_M = _R5P_A6 + (1.0, 1.0, 1.0)

RODAS5P = RosenbrockTableau(
    name="Rodas5P",
    gamma=0.21193756319429014,
    a=((),
       (3.0,),
       (2.849394379747939, 0.45842242204463923),
       (-6.954028509809101, 2.489845061869568, -10.358996098473584),
       (2.8029986275628964, 0.5072464736228206, -0.3988312541770524, -0.04721187230404641),
       _R5P_A6,
       _R5P_A6 + (1.0,),
       _R5P_A6 + (1.0, 1.0)),
    C=((),
       (-14.155112264123755,),
       (-17.97296035885952, -2.859693295451294),
       (147.12150275711716, -1.41221402718213, 71.68940251302358),
       (165.43517024871676, -0.4592823456491126, 42.90938336958603, -5.961986721573306),
       (24.854864614690072, -3.0009227002832186, 47.4931110020768, 5.5814197821558125, -0.6610691825249471),
       (30.91273214028599, -3.1208243349937974, 77.79954646070892, 34.28646028294783, -19.097331116725623,
        -28.087943162872662),
       (37.80277123390563, -3.2571969029072276, 112.26918849496327, 66.9347231244047, -40.06618937091002,
        -54.66780262877968, -9.48861652309627)),
    c=(0.0, 0.6358126895828704, 0.4095798393397535, 0.9769306725060716, 0.4288403609558664, 1.0, 1.0, 1.0),
    d=(0.21193756319429014, -0.42387512638858027, -0.3384627126235924, 1.8046452872882734, 2.325825639765069,
       0.0, 0.0, 0.0),
    m=_R5P_M,
    m_err=(0.0,) * 7 + (1.0,),
    order=5,
    error_order=4,
    dense=_rodas_dense(_R5P_M, _R5P_H),
    dense_order=4,
    source="Steinebach, BIT Numer. Math. 63 (2023) 27; OrdinaryDiffEq.jl rosenbrock_tableaus.jl",
)

# Rosenbrock23: L. F. Shampine and M. W. Reichelt, "The MATLAB ODE suite", SIAM J. Sci. Comput. 18
# (1997) 1-22 (ode23s), as in OrdinaryDiffEq.jl's `Rosenbrock23`. Its two stages in the u form:
# W = I - h d J, k1 = W^-1 f0, W (k2 - k1) = f(y + h k1 / 2) - k1, y1 = y + h k2, with d = 1/(2 + sqrt 2).
# The error estimate needs a third evaluation at (t1, y1) and is coded in `Rosenbrock23.step`.
_D23 = 1.0 / (2.0 + math.sqrt(2.0))

ROSENBROCK23 = RosenbrockTableau(
    name="Rosenbrock23",
    gamma=_D23,
    a=((), (0.5 / _D23,)),
    C=((), (-1.0 / _D23,)),
    c=(0.0, 0.5),
    d=(_D23, 0.0),
    m=(1.0 / _D23, 1.0 / _D23),
    m_err=None,
    order=2,
    error_order=None,
    source="Shampine & Reichelt, SIAM J. Sci. Comput. 18 (1997) 1; OrdinaryDiffEq.jl Rosenbrock23",
)
#: ode23s' error-stage coefficient e32 = 6 + sqrt(2)
ROSENBROCK23_E32 = 6.0 + math.sqrt(2.0)

# Kvaerno5: A. Kvaernø, "Singly diagonally implicit Runge-Kutta methods with an explicit first stage",
# BIT 44 (2004) 489-502: the 5(4) ESDIRK pair, A- and L-stable, stiffly accurate (b is the last row;
# the embedded solution is stage 6). Coefficients as in diffrax (kvaerno5.py). Stage predictors from
# OrdinaryDiffEq.jl (sdirk_tableaus.jl), with alpha_21 = 1 as diffrax corrects it.
_G5 = 0.26
_K5_A6 = (0.13855640231268224, 0.0, -0.04245337201752043, 0.02446657898003141, 0.61943039072480676)
_K5_A7 = (0.13659751177640291, 0.0, -0.05496908796538376, -0.04118626728321046, 0.62993304899016403,
          0.06962479448202728)

KVAERNO5 = ESDIRKTableau(
    name="Kvaerno5",
    gamma=_G5,
    a=((),
       (_G5,),
       (0.13, 0.84033320996790809),
       (0.22371961478320505, 0.47675532319799699, -0.06470895363112615),
       (0.16648564323248321, 0.10450018841591720, 0.03631482272098715, -0.13090704451073998),
       _K5_A6,
       _K5_A7),
    c=(0.0, 0.52, 1.230333209967908, 0.8957659843500759, 0.43639360985864756, 1.0, 1.0),
    b_err=tuple(x - y for x, y in zip(_K5_A7, _K5_A6 + (_G5,))) + (_G5,),
    predictor=((),
               (1.0,),
               (-1.366025403784441, 2.3660254037844357),
               (-0.19650552613122207, 0.8113579546496623, 0.38514757148155954),
               (0.10375304369958693, 0.937994698066431, -0.04174774176601781, 0.0),
               (-0.17281112873898072, 0.6235784481025847, 0.5492326806363959, 0.0, 0.0),
               _K5_A6 + (_G5,)),
    order=5,
    error_order=4,
    source="Kvaernø, BIT 44 (2004) 489; diffrax kvaerno5.py; predictors OrdinaryDiffEq.jl sdirk_tableaus.jl",
)


def _u_form(alpha, gamma_full, b, b_hat) -> dict:
    """The ``u``-form coefficients (``a``, ``C``, ``c``, ``d``, ``m``, ``m_err``) of a Rosenbrock method
    published in the classical ``k`` form, ``(I - h gamma J) k_i = h f(y + sum_j alpha_ij k_j) + h J
    sum_{j<i} gamma_ij k_j``, ``y1 = y + sum_i b_i k_i``: with ``Gamma`` the full lower triangle,
    ``a = alpha Gamma^-1``, ``C = diag(1/gamma) - Gamma^-1``, ``m = b Gamma^-1`` (Hairer & Wanner IV.7,
    eq. 7.25), ``c = alpha 1`` and ``d = Gamma 1``."""
    alpha, gamma_full = np.asarray(alpha), np.asarray(gamma_full)
    inverse = np.linalg.inv(gamma_full)
    a, C = alpha @ inverse, np.diag(1.0 / np.diag(gamma_full)) - inverse
    s = len(b)
    return dict(a=tuple(tuple(float(x) for x in a[i, :i]) for i in range(s)),
                C=tuple(tuple(float(x) for x in C[i, :i]) for i in range(s)),
                c=tuple(float(x) for x in alpha.sum(axis=1)), d=tuple(float(x) for x in gamma_full.sum(axis=1)),
                m=tuple(float(x) for x in np.asarray(b) @ inverse),
                m_err=tuple(float(x) for x in (np.asarray(b) - np.asarray(b_hat)) @ inverse))


# ROS34PW2: J. Rang and L. Angermann, "New Rosenbrock W-methods of order 3 for partial differential
# algebraic equations of index 1", BIT Numer. Math. 45 (2005) 761-787. Classical coefficients (alpha,
# Gamma, b, b_hat) as OrdinaryDiffEq.jl lists them (`ROS34PW2Tableau`, generic_rosenbrock.jl), turned into
# the u form by `_u_form`. A W-method of order 3 with a W-method of order 2 embedded, stiffly accurate
# (b is alpha's last row plus Gamma's, so m = (a_4, 1)) and L-stable; no dense output of its own.
_PW2_G = 4.3586652150845900e-1

ROS34PW2 = RosenbrockTableau(
    name="ROS34PW2",
    gamma=_PW2_G,
    **_u_form(
        alpha=((0.0, 0.0, 0.0, 0.0),
               (8.7173304301691801e-1, 0.0, 0.0, 0.0),
               (8.4457060015369423e-1, -1.1299064236484185e-1, 0.0, 0.0),
               (0.0, 0.0, 1.0, 0.0)),
        gamma_full=((_PW2_G, 0.0, 0.0, 0.0),
                    (-8.7173304301691801e-1, _PW2_G, 0.0, 0.0),
                    (-9.0338057013044082e-1, 5.4180672388095326e-2, _PW2_G, 0.0),
                    (2.4212380706095346e-1, -1.2232505839045147, 5.4526025533510214e-1, _PW2_G)),
        b=(2.4212380706095346e-1, -1.2232505839045147, 1.5452602553351020, 4.3586652150845900e-1),
        b_hat=(3.7810903145819369e-1, -9.6042292212423178e-2, 0.5, 2.1793326075422950e-1)),
    order=3,
    error_order=2,
    w_method=True,
    source="Rang & Angermann, BIT Numer. Math. 45 (2005) 761; OrdinaryDiffEq.jl generic_rosenbrock.jl",
)
