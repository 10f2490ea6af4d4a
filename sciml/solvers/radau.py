"""RadauIIA5: the 3-stage Radau IIA collocation method of order 5, after Hairer & Wanner's RADAU5.

*Solving ODEs II* (2nd ed.), Sec. IV.8, and the RADAU5 code; scipy's ``Radau`` is a port of the same.

* **Stage equations.** With stage increments ``Z_i = Y_i - y`` and ``F_i = f(t + c_i h, y + Z_i)``,
  ``M Z = h (A kron I) F`` (``M`` a constant mass matrix; the identity for ``y' = f``). In the variables
  ``W = T^{-1} Z`` (``_radau_coefficients.T``) they read ``R(W) = T^{-1} F - (Lambda / h) W M^T = 0``
  with ``Lambda = T^{-1} A^{-1} T = diag(gamma, B)``, ``B`` a 2x2 block with eigenvalues ``mu, conj mu``.
* **Simplified Newton** (``_newton.solve``) on ``W``: ``(Lambda / h kron M - I kron J) dW = R(W)``
  splits into one real system ``(gamma/h M - J)`` and one complex one ``(mu/h M - J)`` (the conjugate
  system is the complex conjugate for a real state; a complex state solves it too), so an attempt costs
  one real and one complex LU when ``h`` or ``J`` changed, and none otherwise. The first iterate is the
  last accepted step's collocation polynomial extrapolated into the new step. Convergence: Hairer's
  rate test; a solve that would converge too late stops early and the step is retried shorter by
  RADAU5's predicted factor (with a fresh ``J`` if it was old).
* **Error estimate** (eq. 8.19-8.20): ``err = (gamma/h M - J)^{-1} (f0 + M (Z^T e) / h)``, i.e.
  ``(I - h gamma_0 J)^{-1}`` applied to the embedded order-3 difference, which filters the stiff
  components. After a rejection, or at the first step, an estimate above 1 is refined once with
  ``f(t, y + err)`` in place of ``f0``.
* **Step size**: RADAU5's own predictive controller (Gustafsson): ``h_new = h / quot`` with
  ``quot = max(err^{1/4} / fac, (h_acc / h) (err^2 / err_acc)^{1/4} / 0.9)`` clipped to ``[1/8, 5]``
  and ``fac = 0.9 (1 + 2 nit) / (newton_iterations + 2 nit)``; no growth right after a rejection;
  ``h`` (and the LU factors) are kept when ``1 <= h_new / h <= 1.2`` and Newton converged fast.
  ``J`` is re-formed when Newton needed more than two iterations and its contraction factor exceeded
  1e-3 (scipy's form of RADAU5's rule, which keeps ``J`` a little more often).
* **Dense output**: the collocation polynomial through ``(0, y)`` and ``(c_i, y + Z_i)`` (degree 3).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.scipy.linalg import lu_factor

from sciml.solvers import _linsolve as L
from sciml.solvers import _newton
from sciml.solvers import _radau_coefficients as R
from sciml.solvers._base import AbstractSolver, Step
from sciml.solvers.esdirk import default_tolerance

#: Newton iterations per attempt (RADAU5's NIT)
MAX_ITER = 7
#: J is kept while Newton contracts at least this fast, or converges within two iterations (RADAU5's THET)
SLOW_RATE = 1e-3
#: a new step within this factor of the old is not taken: the LU factors are reused (QUOT1, QUOT2)
HOLD_STEP = (1.0, 1.2)
SAFETY = 0.9
#: bounds of h_new / h (RADAU5's 1/FACL, 1/FACR)
MIN_FACTOR, MAX_FACTOR = 0.2, 8.0
#: the first step, when rejected, is cut by this (RADAU5)
FIRST_REJECT = 0.1


class RadauState(NamedTuple):
    J: jax.Array             # the Jacobian in use (possibly from an earlier step)
    lu_real: L.LU            # factors of gamma/h M - J
    lu_pair: L.LU            # factors of mu/h M - J (complex)
    lu_conj: Any             # factors of conj(mu)/h M - J for a complex state; None for a real one
    lu_dt: jax.Array         # the step the factors are for
    need_jac: jax.Array      # form J at the next attempt
    jac_current: jax.Array   # J was formed at the current (t, y)
    eta: jax.Array           # Newton's convergence estimate, carried to the next solve
    newton_ok: jax.Array     # the last attempt's Newton iteration converged
    shrink: jax.Array        # Newton's step factor after a failure
    rate: jax.Array          # the last attempt's Newton contraction factor
    n_iter: jax.Array        # the last attempt's Newton iterations
    poly: jax.Array          # (3, n) collocation polynomial (theta^1..3) of the last accepted step
    poly_dt: jax.Array       # its step
    poly_try: jax.Array      # the last attempt's polynomial (adopted when it is accepted)
    started: jax.Array       # a step has been accepted (RADAU5's FIRST is its negation)
    rejected: jax.Array      # the last attempt was rejected
    h_acc: jax.Array         # step and error of the last accepted step (Gustafsson's memory)
    err_acc: jax.Array
    rtol: Any
    atol: Any
    nfev: jax.Array
    njev: jax.Array
    nlu: jax.Array


def _complex_dtype(dtype):
    """The complex dtype of ``dtype``'s precision (complex64 for float32, complex128 for float64)."""
    return jnp.result_type(dtype, jnp.complex64)


def _times_mass(mass, v):
    """``M v`` for each row of ``v`` (shape ``(..., n)``); ``mass=None`` is the identity."""
    return v if mass is None else v @ mass.T.astype(v.dtype)


def _factor(J, c, mass) -> L.LU:
    """Factors of ``c M - J``."""
    n = J.shape[0]
    M = jnp.eye(n, dtype=J.dtype) if mass is None else mass.astype(J.dtype)
    return L.LU(*lu_factor(c * M - J))


@dataclasses.dataclass(frozen=True)
class RadauIIA5(AbstractSolver):
    """Radau IIA of order 5 (3 stages): Hairer & Wanner's RADAU5 algorithm, scipy's ``Radau``.

    Fully implicit, L-stable, stiffly accurate, stage order 3. Each step solves the three coupled stages
    with a simplified Newton iteration that needs one real and one complex ``n x n`` LU per change of
    step size or Jacobian (reused across steps while both stay), and keeps ``J`` while Newton converges
    fast. The error estimate is Hairer's filtered embedded one; the step size follows RADAU5's
    predictive (Gustafsson) controller, which takes the place of ``controller=``'s step proposal (the
    controller still decides acceptance, ``err <= 1``, and ``max_step`` still caps the step). Dense
    output: the collocation polynomial (degree 3). A step whose Newton iteration fails is retried
    shorter; only a step-size underflow ends the solve (``Status.NEWTON_FAILED``).

    When to use it: stiff problems at tight tolerances (``rtol`` 1e-6 and below), very stiff or
    oscillatory stiff problems (its high order and L-stability keep large steps accurate), and states
    that are complex. For loose tolerances and small systems ``Rodas5P`` (no Newton iteration) is
    usually cheaper; for large systems, ``BDF``. Takes ``adjoint=Direct()`` and ``Forward()``.

    Example:
        >>> import jax.numpy as jnp, sciml
        >>> def rober(t, y, k):
        ...     return jnp.stack([-k[0] * y[0] + k[2] * y[1] * y[2],
        ...                       k[0] * y[0] - k[2] * y[1] * y[2] - k[1] * y[1] ** 2, k[1] * y[1] ** 2])
        >>> sol = sciml.solve(rober, jnp.array([1.0, 0.0, 0.0]), (0.0, 1e5), args=jnp.array([0.04, 3e7, 1e4]),
        ...                   solver=sciml.solvers.RadauIIA5(), rtol=1e-6, atol=1e-10)
        >>> round(float(sol.ys[-1, 0]), 4), int(sol.stats["njev"]) < int(sol.stats["naccept"])
        (0.0179, True)
    """

    #: a `MassMatrix` set by ``sciml.solve(..., mass_matrix=M)``: the stages solve ``M Z = h (A kron I) F``
    mass_matrix: Any = dataclasses.field(default=None, repr=False)

    takes_mass_matrix = True
    order = 5
    error_order = 4              # the error estimate is O(h^4): it sizes the first step
    stiff = True
    fsal = False                 # the loop evaluates f(t1, y1) after an accepted step
    fevals_per_step = 0          # Newton's evaluations vary: counted in the state
    dense_degree = 3

    def init(self, f, t0, y0, f0, dt0) -> RadauState:
        n, dtype = y0.shape[0], y0.dtype
        real = jnp.zeros((), dtype).real.dtype
        cdtype = _complex_dtype(dtype)
        zero, tol = jnp.zeros((), jnp.int32), default_tolerance(real)
        poly = jnp.zeros((3, n), dtype)
        return RadauState(
            J=jnp.zeros((n, n), dtype), lu_real=L.empty_lu(n, dtype), lu_pair=L.empty_lu(n, cdtype),
            lu_conj=L.empty_lu(n, cdtype) if jnp.iscomplexobj(y0) else None, lu_dt=jnp.zeros_like(dt0),
            need_jac=jnp.asarray(True), jac_current=jnp.asarray(False), eta=jnp.ones((), real),
            newton_ok=jnp.asarray(True), shrink=jnp.ones((), real), rate=jnp.zeros((), real), n_iter=zero,
            poly=poly, poly_dt=jnp.ones_like(dt0), poly_try=poly, started=jnp.asarray(False),
            rejected=jnp.asarray(False), h_acc=jnp.zeros_like(dt0), err_acc=jnp.zeros((), real), rtol=tol,
            atol=tol, nfev=zero, njev=zero, nlu=zero)

    def bind_tolerances(self, state: RadauState, rtol, atol) -> RadauState:
        return state._replace(rtol=rtol, atol=atol)

    def stats(self, state: RadauState) -> dict:
        return {"nfev": state.nfev, "njev": state.njev, "nlu": state.nlu}

    def step(self, f, t, y, f0, dt, state: RadauState) -> Step:
        mass = None if self.mass_matrix is None else self.mass_matrix.array(y.dtype)
        return self._step(f, t, y, f0, dt, state, mass=mass)

    def _step(self, f, t, y, f0, dt, state: RadauState, mass) -> Step:
        """One attempt for ``M y' = f`` (``mass=None``: ``M = I``)."""
        n, dtype = y.shape[0], y.dtype
        h = dt.astype(dtype)
        is_complex = jnp.iscomplexobj(y)
        cdtype = _complex_dtype(dtype)
        J = lax.cond(state.need_jac, lambda: lax.stop_gradient(_jacobian(f, t, y)), lambda: state.J)
        refactor = state.need_jac | (dt != state.lu_dt)

        def factor():
            Jc = J.astype(cdtype)
            mu = jnp.asarray(R.MU, cdtype) / h.astype(cdtype)
            conj = _factor(Jc, jnp.conj(mu), mass) if is_complex else None
            return _factor(J, R.GAMMA / h, mass), _factor(Jc, mu, mass), conj

        lus = lax.cond(refactor, factor, lambda: (state.lu_real, state.lu_pair, state.lu_conj))
        lu_real, lu_pair, lu_conj = jax.tree_util.tree_map(lax.stop_gradient, lus)

        T, TI, lam = (jnp.asarray(m, dtype) for m in (R.T, R.TI, R.LAMBDA))
        Q, QI = jnp.asarray(R.Q, cdtype), jnp.asarray(R.QI, cdtype)
        c = jnp.asarray(R.C, dt.dtype)

        def residual(w):
            W = w.reshape(3, n)
            Z = T @ W
            F = jnp.stack([f(t + c[i] * dt, y + Z[i]) for i in range(3)])
            return (TI @ F - _times_mass(mass, lam @ W) / h).ravel()

        def linsolve(r):
            r = r.reshape(3, n)
            w0 = L.solve(lu_real, r[0])
            pair = QI @ r[1:].astype(cdtype)
            u = L.solve(lu_pair, pair[0])
            if is_complex:
                w12 = Q[:, :1] * u + Q[:, 1:] * L.solve(lu_conj, pair[1])
            else:                   # the conjugate system's solution is conj(u)
                w12 = 2 * (Q[:, :1] * u).real
            return jnp.concatenate([w0[None], w12.astype(dtype)]).ravel()

        # First iterate: the last accepted step's polynomial y + sum_p q_p s^(p+1), s = 1 + c_i h / h_old.
        s = (1 + c * (dt / state.poly_dt)).astype(dtype)
        powers = s[:, None] ** jnp.arange(1, 4, dtype=dtype) - 1
        Z0 = jnp.where(state.started, powers @ state.poly, 0)
        scale = state.atol + state.rtol * jnp.abs(y)
        tol = _newton.tolerance(state.rtol, scale.dtype)
        out = _newton.solve(residual, (TI @ Z0).ravel(), linsolve, L.dense_tangent_solve, jnp.tile(scale, 3), tol,
                            state.eta, active=True, max_iter=MAX_ITER)
        Z = T @ out.x.reshape(3, n)
        y1 = y + Z[2]

        # Error estimate, refined once with f(t, y + err) after a rejection or at the first step.
        ZE = _times_mass(mass, jnp.asarray(R.E, dtype) @ Z / h)
        err = L.solve(lu_real, f0 + ZE)
        refine = (state.rejected | ~state.started) & (self.error_norm(err, y, y1, state.rtol, state.atol) > 1)
        err = lax.cond(refine, lambda: L.solve(lu_real, f(t, y + err) + ZE), lambda: err)

        njev = state.need_jac.astype(jnp.int32)
        new = state._replace(
            J=J, lu_real=lu_real, lu_pair=lu_pair, lu_conj=lu_conj, lu_dt=dt, need_jac=jnp.asarray(False),
            jac_current=state.jac_current | state.need_jac, eta=out.eta, newton_ok=out.converged,
            shrink=out.shrink, rate=out.rate, n_iter=out.iterations,
            poly_try=jnp.asarray(R.V_INV, dtype) @ Z,
            nfev=state.nfev + 3 * out.iterations + refine.astype(jnp.int32), njev=state.njev + njev,
            # scipy counts each LU: a real and a complex one (and the conjugate for a complex state)
            nlu=state.nlu + refactor.astype(jnp.int32) * (3 if is_complex else 2))
        # A non-finite iterate is not a convergence failure: y1 is NaN and the step fails as non-finite.
        return Step(y1=y1, y_err=err, f1=None, info=new.poly_try, state=new, ok=out.converged | out.nonfinite)

    def dense(self, f, t, y, dt, y1, f0, f1, info):
        return jnp.concatenate([y[None], info])

    def after_step(self, state_new: RadauState, state_old, accept, dt, dt_next, err):
        real = state_new.err_acc.dtype
        err = jnp.asarray(err, real)
        failed = ~state_new.newton_ok
        fac = jnp.minimum(SAFETY, SAFETY * (1 + 2 * MAX_ITER) / (state_new.n_iter + 2 * MAX_ITER)).astype(real)
        finite_err = jnp.where(jnp.isfinite(err), err, 1e10)
        quot = jnp.clip(finite_err ** 0.25 / fac, 1 / MAX_FACTOR, 1 / MIN_FACTOR)
        # Gustafsson's predictive term, from the last accepted step (none yet: err_acc == 0).
        have_acc = state_new.err_acc > 0
        ratio = (state_new.h_acc / dt).astype(real)
        gus = ratio * (finite_err ** 2 / jnp.where(have_acc, state_new.err_acc, 1)) ** 0.25 / SAFETY
        quot_accept = jnp.where(have_acc, jnp.maximum(quot, jnp.clip(gus, 1 / MAX_FACTOR, 1 / MIN_FACTOR)), quot)
        grow = 1 / quot_accept
        grow = jnp.where(state_new.rejected, jnp.minimum(grow, 1), grow)
        hold = (state_new.rate <= SLOW_RATE) & (grow >= HOLD_STEP[0]) & (grow <= HOLD_STEP[1])
        dt_accept = jnp.where(hold, dt, dt * grow.astype(dt.dtype))
        shrink = jnp.where(failed, state_new.shrink,
                           jnp.where(state_new.started, 1 / quot, FIRST_REJECT)).astype(dt.dtype)
        dt_reject = dt * shrink

        accepted = state_new._replace(
            need_jac=(state_new.n_iter > 2) & (state_new.rate > SLOW_RATE), jac_current=jnp.asarray(False), poly=state_new.poly_try,
            poly_dt=dt, started=jnp.asarray(True), rejected=jnp.asarray(False), h_acc=dt,
            err_acc=jnp.maximum(1e-2, err).astype(real))
        # Rejected (error or Newton): the state did not move, so a J formed here stays current.
        rejected = state_new._replace(need_jac=~state_new.jac_current, rejected=jnp.asarray(True))
        state = jax.tree_util.tree_map(lambda a, r: jnp.where(accept, a, r), accepted, rejected)
        return state, jnp.where(accept, dt_accept, dt_reject)


def _jacobian(f, t, y):
    """``df/dy``; for a complex state the complex derivative (exact for ``f`` holomorphic in ``y``)."""
    if jnp.iscomplexobj(y):
        return jax.jacfwd(lambda v: f(t, v), holomorphic=True)(y)
    return L.jacobian(f, t, y)
