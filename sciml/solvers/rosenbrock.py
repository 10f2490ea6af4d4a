"""Rosenbrock methods: linearly implicit, so a step is a few linear solves with one matrix, no Newton loop.

Each step attempt forms ``J = df/dy`` once (forward-mode autodiff, or the ``jac=`` given to
``sciml.solve``) and factors ``I - h gamma J`` once; every stage reuses the factors (Hairer & Wanner,
*Solving ODEs II*, Sec. IV.7, the ``u`` form of eq. 7.25; see ``_stiff_tableau.py``). Non-autonomous
problems get the ``h d_i df/dt`` terms from one more Jacobian-vector product. The stages are unrolled
into straight-line code, so a step is a handful of fused kernels plus the solves. Gradients
(``adjoint=Direct()``) differentiate through the Jacobian and the LU factorisation.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from sciml.solvers import _linsolve as L
from sciml.solvers import _stiff_tableaus as T
from sciml.solvers._base import AbstractSolver, Step
from sciml.solvers._explicit_rk import _combine
from sciml.solvers._mass import times
from sciml.solvers._stiff_tableau import RosenbrockTableau


class RosenbrockState(NamedTuple):
    njev: jax.Array      # Jacobians formed
    nlu: jax.Array       # LU factorisations


@dataclasses.dataclass(frozen=True)
class AbstractRosenbrock(AbstractSolver):
    """Base of the Rosenbrock family; a subclass sets ``tableau`` and the class variables.

    ``mass_matrix`` (a `MassMatrix`, set by ``sciml.solve(..., mass_matrix=M)``) solves ``M y' = f``: the
    stage equations become ``(M - h gamma J) u_i = h gamma (f_i + M sum_j C_ij u_j / h + d_i h f_t)``
    (Hairer & Wanner IV.7, eq. 7.4' in the ``u`` form; OrdinaryDiffEq.jl's ``W = M/(h gamma) - J``).
    Rodas methods are stiffly accurate and their embedded estimate and dense output are designed for
    index-1 DAEs (Steinebach 2023), so nothing else changes.
    """

    tableau: ClassVar[RosenbrockTableau]
    stiff = True
    takes_mass_matrix = True
    mass_matrix: Any = dataclasses.field(default=None, repr=False)

    def init(self, f, t0, y0, f0, dt0) -> RosenbrockState:
        zero = jnp.zeros((), jnp.int32)
        return RosenbrockState(zero, zero)

    def stats(self, state: RosenbrockState) -> dict:
        return {"njev": state.njev, "nlu": state.nlu}

    def _stages(self, f, t, y, f0, dt, state: RosenbrockState):
        """The stage increments ``u_i``; also the factors, ``df/dt`` and every stage's value of ``f``."""
        tab = self.tableau
        h = dt.astype(y.dtype)
        J = L.jacobian(f, t, y)
        dfdt = L.time_derivative(f, t, y)
        hg = h * tab.gamma
        mass = None if self.mass_matrix is None else self.mass_matrix.array(y.dtype)
        lu = L.factor(J, hg, mass)
        us, fs = [], []
        for i in range(tab.stages):
            fi = f0 if i == 0 else f(t + tab.c[i] * dt, _combine(y, 1.0, tab.a[i], us))
            rhs = fi if i == 0 else fi + times(mass, _combine(None, 1.0 / h, tab.C[i], us))
            if tab.d[i] != 0.0:
                rhs = rhs + (tab.d[i] * h) * dfdt
            us.append(hg * L.solve(lu, rhs))
            fs.append(fi)
        state = RosenbrockState(state.njev + 1, state.nlu + 1)
        return us, fs, lu, dfdt, state

    def _embedded_step(self, f, t, y, f0, dt, state) -> Step:
        """A step of a tableau with an embedded pair: ``y1 = y + sum m_j u_j``, error ``sum m_err_j u_j``."""
        tab = self.tableau
        us, _, _, _, state = self._stages(f, t, y, f0, dt, state)
        y1 = _combine(y, 1.0, tab.m, us)
        y_err = _combine(None, 1.0, tab.m_err, us)
        return Step(y1=y1, y_err=y_err, f1=None, info=jnp.stack(us), state=state, ok=jnp.asarray(True))


@dataclasses.dataclass(frozen=True)
class Rodas5P(AbstractRosenbrock):
    """Rodas5P: a 5th-order stiffly accurate Rosenbrock method with a 4th-order embedded estimate and
    its own 4th-order dense output (Steinebach 2023). The default stiff solver.

    One Jacobian, one LU factorisation and eight linear solves per step; no Newton iteration, so it
    never fails to converge. Best for small to medium stiff systems (a dense ``n x n`` Jacobian) at
    tolerances from about 1e-3 to 1e-10; keeps its order on the standard stiff test set (ROBER,
    HIRES, Van der Pol, OREGO, POLLU). For large systems use ``BDF(linear_solver="gmres")``.

    Example:
        >>> import jax.numpy as jnp, sciml
        >>> def rober(t, y, k):
        ...     return jnp.stack([-k[0] * y[0] + k[2] * y[1] * y[2],
        ...                       k[0] * y[0] - k[2] * y[1] * y[2] - k[1] * y[1] ** 2, k[1] * y[1] ** 2])
        >>> sol = sciml.solve(rober, jnp.array([1.0, 0.0, 0.0]), (0.0, 1e5), args=jnp.array([0.04, 3e7, 1e4]),
        ...                   solver=sciml.solvers.Rodas5P(), rtol=1e-6, atol=1e-10)
        >>> round(float(sol.ys[-1, 0]), 4), int(sol.stats["naccept"]) < 200
        (0.0179, True)
    """

    tableau = T.RODAS5P
    order = 5
    error_order = 5                       # the embedded solution is of order 4
    fevals_per_step = 7                   # stages 2..8 (stage 1 is f0); f(t1, y1) is the loop's

    def step(self, f, t, y, f0, dt, state) -> Step:
        return self._embedded_step(f, t, y, f0, dt, state)

    def dense(self, f, t, y, dt, y1, f0, f1, info):
        us = list(info)
        return jnp.stack([y] + [_combine(None, 1.0, row, us) for row in self.tableau.dense])


@dataclasses.dataclass(frozen=True)
class ROS34PW2(AbstractRosenbrock):
    """ROS34PW2 (Rang & Angermann 2005): a Rosenbrock-W method of order 3 with an embedded order-2
    estimate, 4 stages, stiffly accurate and L-stable; cubic Hermite dense output.

    A W-method keeps its order with any approximation of the Jacobian, so one Jacobian may serve many
    steps: the C kernel reuses it where forming it is costly, for a NumPy field in `sciml.solve_ivp`
    (a finite-difference Jacobian costs ``n`` calls of the field), and forms it afresh only after ``K``
    accepted steps or a rejected step taken with an old one (``njev`` counts the Jacobians formed).
    The XLA loop forms it every step, as for every Rosenbrock method. One LU factorisation and four
    linear solves per step. Best for stiff NumPy fields at moderate tolerances (``rtol`` about 1e-3 to
    1e-6); for tight tolerances or a cheap Jacobian prefer `Rodas5P`.

    Example:
        >>> import numpy as np, sciml
        >>> def van_der_pol(t, y, mu):           # NumPy: runs in the C kernel, the field called back
        ...     return np.array([y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]])
        >>> res = sciml.solve_ivp(van_der_pol, (0.0, 3000.0), np.array([2.0, 0.0]), method="ROS34PW2",
        ...                       args=(1000.0,), rtol=1e-6, atol=1e-8)
        >>> res.success, bool(res.njev < res.nlu)
        (True, True)
    """

    tableau = T.ROS34PW2
    order = 3
    error_order = 3                       # the embedded solution is of order 2
    fevals_per_step = 3                   # stages 2..4 (stage 1 is f0); f(t1, y1) is the loop's

    def step(self, f, t, y, f0, dt, state) -> Step:
        return self._embedded_step(f, t, y, f0, dt, state)


@dataclasses.dataclass(frozen=True)
class Rosenbrock23(AbstractRosenbrock):
    """Rosenbrock23 (MATLAB's ``ode23s``): order 2 with a 3rd-order error estimate, L-stable, FSAL.

    Cheap steps (one Jacobian, one LU, three solves): for loose tolerances (``rtol`` around 1e-2 to
    1e-4) and for problems whose Jacobian is costly. Dense output: the method's own quadratic
    interpolant (Shampine & Reichelt 1997).

    Example:
        >>> import jax.numpy as jnp, sciml
        >>> lam = 1e4       # y' = -lam (y - cos t): y(1) = lam (lam cos 1 + sin 1) / (lam^2 + 1)
        >>> sol = sciml.solve(lambda t, y, a: -lam * (y - jnp.cos(t)), jnp.array([0.0]), (0.0, 1.0),
        ...                   solver=sciml.solvers.Rosenbrock23(), rtol=1e-4, atol=1e-6)
        >>> exact = lam * (lam * jnp.cos(1.0) + jnp.sin(1.0)) / (lam**2 + 1)
        >>> bool(abs(sol.ys[-1, 0] - exact) < 1e-4)
        True
    """

    tableau = T.ROSENBROCK23
    order = 2
    error_order = 3
    fevals_per_step = 2                   # the second stage and f(t1, y1), which is the next f0
    fsal = True

    def step(self, f, t, y, f0, dt, state) -> Step:
        d = self.tableau.gamma
        us, fs, lu, dfdt, state = self._stages(f, t, y, f0, dt, state)
        h = dt.astype(y.dtype)
        k1 = us[0] / (h * d)
        k2 = k1 + us[1] / (h * d)
        y1 = y + h * k2
        f1 = f(t + dt, y1)
        M = self.mass_matrix
        # With a mass matrix M k replaces k (Shampine & Reichelt's W = M - h d J form).
        k3 = L.solve(lu, f1 - T.ROSENBROCK23_E32 * (times(M, k2) - fs[1]) - 2.0 * (times(M, k1) - f0)
                     + (h * d) * dfdt)
        y_err = (h / 6.0) * (k1 - 2.0 * k2 + k3)
        return Step(y1=y1, y_err=y_err, f1=f1, info=jnp.stack([k1, k2]), state=state, ok=jnp.asarray(True))

    def dense(self, f, t, y, dt, y1, f0, f1, info):
        k1, k2 = info[0], info[1]
        h = dt.astype(y.dtype)
        d = self.tableau.gamma
        scale = h / (1.0 - 2.0 * d)
        return jnp.stack([y, scale * (k1 - 2.0 * d * k2), scale * (k2 - k1)])
