"""BDF: variable-order (1-5), quasi-constant-step backward differentiation formulas in difference form.

The algorithm of scipy's ``BDF`` (Shampine & Reichelt, "The MATLAB ODE suite", 1997: the numerical
differentiation formulas NDF with Klopfenstein's ``kappa``), written for one ``lax.while_loop``:

* The state keeps the backward differences ``D[j] = nabla^j y_n`` (``D[0] = y_n``) for the current
  step ``h``. A new step size ``h'`` rescales them in place (``D <- (R(h'/h) U)^T D``), so the formula
  always works on an equally spaced grid.
* A step predicts ``y_pred = sum_{j<=q} D[j]`` and solves the corrector
  ``d = c f(t + h, y_pred + d) - psi`` (``c = h / alpha_q``) by a simplified Newton iteration with
  ``I - c J``; ``J`` is kept until Newton fails to converge with it, the factors until ``c`` changes.
* The error estimate is ``error_const[q] d``; the step size stays fixed for ``q + 1`` steps, then the
  error estimates of orders ``q - 1, q, q + 1`` choose the order and the next step (factor <= 10).
* Dense output is the interpolating polynomial of the differences (degree ``q``).

Tolerances: a multistep method propagates the solution its error estimate is about (no local
extrapolation), and along a neutral direction such as the phase of a limit cycle those local errors
add up: scipy's BDF and LSODA end 10-100 times ``rtol`` away on HIRES and Van der Pol. sciml's BDF
therefore holds its local error to ``local_tolerance`` (default 0.05) times ``rtol``/``atol``, i.e. it
takes the steps scipy's BDF would take at 20 times tighter tolerances, so that its final errors are
about ``rtol`` like those of Rodas5P and Kvaerno5. ``local_tolerance=1`` is scipy's BDF step for step.

``linear_solver="gmres"`` never forms ``J``: Newton's linear systems are solved by GMRES on
Jacobian-vector products at the predicted state (for large systems whose ``n x n`` Jacobian is too big).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from sciml.solvers import _linsolve as L
from sciml.solvers import _newton
from sciml.solvers._base import AbstractSolver, Step
from sciml.solvers._control import error_norm
from sciml.solvers._mass import pseudo_inverse, times

MAX_ORDER = 5
#: Klopfenstein-Shampine NDF coefficients (scipy ``bdf.py``); kappa = 0 would be plain BDF
KAPPA = np.array([0.0, -0.1850, -1.0 / 9.0, -0.0823, -0.0415, 0.0])
GAMMA = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, MAX_ORDER + 1))])
ALPHA = (1.0 - KAPPA) * GAMMA
ERROR_CONST = KAPPA * GAMMA + 1.0 / np.arange(1, MAX_ORDER + 2)
#: rows of the difference array: orders 0..MAX_ORDER plus the two the order selection needs
ROWS = MAX_ORDER + 3
MIN_FACTOR, MAX_FACTOR = 0.2, 10.0
LINEAR_SOLVERS = ("lu", "gmres")


def _rescale_matrix(factor) -> jax.Array:
    """scipy's ``compute_R(MAX_ORDER, factor)``: cumulative products of ``(i - 1 - factor j) / i``."""
    i = jnp.arange(1, MAX_ORDER + 1, dtype=factor.dtype)[:, None]
    j = jnp.arange(1, MAX_ORDER + 1, dtype=factor.dtype)[None, :]
    M = jnp.ones((MAX_ORDER + 1, MAX_ORDER + 1), factor.dtype)
    M = M.at[1:, :].set(0.0).at[1:, 1:].set((i - 1 - factor * j) / i)
    return jnp.cumprod(M, axis=0)


#: ``_rescale_matrix(1.0)`` in NumPy: computing it with JAX at import would start JAX's backends, after
#: which `jax.distributed.initialize` (a multi-process program's first call) is refused
_U = np.cumprod(np.vstack([np.ones((1, MAX_ORDER + 1)), np.hstack([np.zeros((MAX_ORDER, 1)), (
    np.arange(MAX_ORDER)[:, None] - np.arange(1, MAX_ORDER + 1)[None, :]) / np.arange(1, MAX_ORDER + 1)[:, None]])]),
    axis=0)
#: B[j, p]: coefficient of theta**p in prod_{i<j} (theta - 1 + i) / (i + 1), the Newton basis of the
#: interpolating polynomial through the last points of a step ending at theta = 1
_BASIS = np.zeros((MAX_ORDER + 1, MAX_ORDER + 1))
for _j in range(MAX_ORDER + 1):
    _poly = np.array([1.0])
    for _i in range(_j):
        _poly = np.convolve(_poly, np.array([_i - 1.0, 1.0]) / (_i + 1))
    _BASIS[_j, :len(_poly)] = _poly


def _rescale(D, order, factor):
    """The differences for a step ``factor`` times the current one (scipy's ``change_D``)."""
    live = jnp.arange(MAX_ORDER + 1) <= order
    block = live[:, None] & live[None, :]
    RU = jnp.where(block, _rescale_matrix(factor), 0) @ jnp.where(block, jnp.asarray(_U, factor.dtype), 0)
    head = RU.T.astype(D.dtype) @ D[:MAX_ORDER + 1]
    return D.at[:MAX_ORDER + 1].set(jnp.where(live[:, None], head, D[:MAX_ORDER + 1]))


class BDFState(NamedTuple):
    D: jax.Array             # (ROWS, n) backward differences for step h
    order: jax.Array         # int32, 1..MAX_ORDER
    h: jax.Array             # the step the differences are scaled for
    n_equal: jax.Array       # steps taken with this h and order
    J: Any                   # Jacobian in use (None with gmres)
    lu: Any                  # factors of I - lu_c J (None with gmres)
    lu_c: jax.Array
    need_jac: jax.Array
    jac_current: jax.Array   # J was formed during the current step's attempts
    newton_ok: jax.Array
    n_iter: jax.Array        # Newton iterations of the last attempt (scipy's safety factor)
    eta: jax.Array
    rtol: Any                # None until the integration loop binds the tolerances
    atol: Any
    nfev: jax.Array
    njev: jax.Array
    nlu: jax.Array


@dataclasses.dataclass(frozen=True)
class BDF(AbstractSolver):
    """Variable-order (1-5) variable-step BDF (NDF) in difference form, in the style of scipy's ``BDF``.

    The workhorse for larger stiff systems: usually one or two evaluations of ``f`` per step, a
    Jacobian formed only when Newton stops converging, one LU per change of step size or order.
    Dense output is the method's own interpolating polynomial.

    Args:
        linear_solver: ``"lu"`` (dense LU of ``I - c J``; the default, right up to a few hundred
            states) or ``"gmres"`` (matrix-free: GMRES on Jacobian-vector products, never forming
            ``J``; for large systems whose ``I - c J`` is well conditioned or whose Jacobian does not fit
            in memory).
        krylov_tol: GMRES's relative residual with ``linear_solver="gmres"``.
        krylov_restart: GMRES's restart length (also its iteration cap per restart).
        local_tolerance: the local error is held to this fraction of ``rtol``/``atol`` (see the module
            notes; ``1.0`` reproduces scipy's ``BDF``).

    A multistep method: its steps depend on the history, so ``adjoint=Direct()`` (which re-runs single
    steps) refuses it; ``Forward()`` (differentiates through the history) and ``Interpolating()`` work,
    and ``Rodas5P``/``Kvaerno5`` take ``Direct()``.

    Example:
        >>> import jax.numpy as jnp, sciml
        >>> def rober(t, y, k):
        ...     return jnp.stack([-k[0] * y[0] + k[2] * y[1] * y[2],
        ...                       k[0] * y[0] - k[2] * y[1] * y[2] - k[1] * y[1] ** 2, k[1] * y[1] ** 2])
        >>> sol = sciml.solve(rober, jnp.array([1.0, 0.0, 0.0]), (0.0, 1e5), args=jnp.array([0.04, 3e7, 1e4]),
        ...                   solver=sciml.solvers.BDF(), rtol=1e-6, atol=1e-10)
        >>> round(float(sol.ys[-1, 0]), 4)
        0.0179
    """

    linear_solver: str = "lu"
    krylov_tol: float = 1e-5
    krylov_restart: int = 20
    local_tolerance: float = 0.05
    #: a `MassMatrix` set by ``sciml.solve(..., mass_matrix=M)``: the corrector solves
    #: ``c f(t + h, y_pred + d) = M (psi + d)`` with Newton matrix ``M - c J`` (the standard NDF/DASSL form)
    mass_matrix: Any = dataclasses.field(default=None, repr=False)

    takes_mass_matrix = True
    order = MAX_ORDER            # the highest order it uses
    error_order = 2              # the controller is not used; this sizes the first (order 1) step
    stiff = True
    fsal = True                  # f(t1, y1) is the derivative of the step polynomial
    fevals_per_step = 0          # Newton's evaluations vary: counted in the state
    multistep = True

    def __post_init__(self):
        if self.linear_solver not in LINEAR_SOLVERS:
            raise ValueError(f"`BDF(linear_solver=...)` must be one of {LINEAR_SOLVERS}; got "
                             f"{self.linear_solver!r}. Use \"lu\" (dense) or \"gmres\" (matrix-free, large n).")
        if not self.local_tolerance > 0:
            raise ValueError(f"`BDF(local_tolerance=...)` must be positive; got {self.local_tolerance!r}. The "
                             f"default 0.05 gives final errors about `rtol`; 1.0 is scipy's BDF.")

    @property
    def _dense(self) -> bool:
        return self.linear_solver == "lu"

    def init(self, f, t0, y0, f0, dt0) -> BDFState:
        n, dtype = y0.shape[0], y0.dtype
        zero = jnp.zeros((), jnp.int32)
        return BDFState(
            D=_start(y0, f0, dt0), order=jnp.ones((), jnp.int32), h=dt0, n_equal=zero,
            J=jnp.zeros((n, n), dtype) if self._dense else None, lu=L.empty_lu(n, dtype) if self._dense else None,
            lu_c=jnp.zeros((), dtype), need_jac=jnp.asarray(self._dense), jac_current=jnp.asarray(False),
            newton_ok=jnp.asarray(True), n_iter=zero, eta=jnp.ones((), jnp.zeros((), dtype).real.dtype), rtol=None,
            atol=None,
            nfev=zero, njev=zero, nlu=zero)

    def bind_tolerances(self, state: BDFState, rtol, atol) -> BDFState:
        # Every internal norm (Newton, order selection) works at the local tolerances.
        return state._replace(rtol=rtol * self.local_tolerance, atol=atol * self.local_tolerance)

    def stats(self, state: BDFState) -> dict:
        return {"nfev": state.nfev, "njev": state.njev, "nlu": state.nlu}

    def step(self, f, t, y, f0, dt, state: BDFState) -> Step:
        if state.rtol is None:
            raise NotImplementedError(
                "`BDF` is a multistep method: a step depends on the solution history, so it cannot be re-run "
                "one step at a time as `adjoint=sciml.adjoints.Direct()` does. Use `adjoint=sciml.adjoints."
                "Forward()` or `Interpolating()`, or a one-step stiff solver such as `sciml.solvers.Rodas5P()` "
                "or `Kvaerno5()` with `Direct()`.")
        # A state that is not D[0] (the first step, or a jump added to it) restarts at order 1.
        restart = jnp.any(y != state.D[0])
        mass = None if self.mass_matrix is None else self.mass_matrix.array(y.dtype)
        # A start needs y'(t0): M^+ f0 on the differential part (the loop's f0 there is f(t0, y0)).
        y_dot0 = f0 if mass is None else pseudo_inverse(self.mass_matrix, y.dtype) @ f0
        D = jnp.where(restart, _start(y, y_dot0, dt), _rescale(state.D, state.order, (dt / state.h).astype(y.dtype)))
        q = jnp.where(restart, 1, state.order)
        same_step = ~restart & (dt == state.h)
        live = (jnp.arange(ROWS) <= q)[:, None]
        y_pred = jnp.sum(jnp.where(live, D, 0), axis=0)
        alpha, gamma = jnp.asarray(ALPHA, y.dtype)[q], jnp.asarray(GAMMA, y.dtype)
        psi = jnp.sum(jnp.where(live[:MAX_ORDER + 1], gamma[:, None] * D[:MAX_ORDER + 1], 0), axis=0) / alpha
        c = dt.astype(y.dtype) / alpha
        t_new = t + dt
        scale = state.atol + state.rtol * jnp.abs(y_pred)

        def residual(d):
            return c * f(t_new, y_pred + d) - times(mass, psi + d)

        new = state
        if self._dense:
            J = lax.cond(state.need_jac, lambda: lax.stop_gradient(L.jacobian(f, t_new, y_pred)), lambda: state.J)
            refactor = state.need_jac | (c != state.lu_c)
            lu = lax.cond(refactor, lambda: L.factor(J, c, mass), lambda: state.lu)
            lu = jax.tree_util.tree_map(lax.stop_gradient, lu)
            new = new._replace(J=J, lu=lu, lu_c=c, njev=state.njev + state.need_jac.astype(jnp.int32),
                               nlu=state.nlu + refactor.astype(jnp.int32))
            out = _newton.solve(residual, jnp.zeros_like(y), lambda r: L.solve(lu, r), L.dense_tangent_solve,
                                scale, _newton.tolerance(state.rtol, scale.dtype), state.eta, active=True)
        else:
            _, jvp = jax.linearize(lambda v: f(t_new, v), y_pred)
            gm = dict(tol=self.krylov_tol, restart=self.krylov_restart, maxiter=self.krylov_restart)
            matvec = lambda v: times(mass, v) - c * jvp(v)  # noqa: E731
            out = _newton.solve(residual, jnp.zeros_like(y), lambda r: L.gmres_solve(matvec, r, **gm),
                                lambda g, b: L.gmres_solve(g, b, **gm), scale,
                                _newton.tolerance(state.rtol, scale.dtype), state.eta, active=True)
            new = new._replace(njev=state.njev + 1, nfev=state.nfev + 1)
        d = out.x
        D_new = _difference_update(D, q, d)
        new = new._replace(
            D=D_new, order=q, h=dt, n_equal=jnp.where(same_step, state.n_equal, 0) + 1, need_jac=jnp.asarray(False),
            jac_current=state.jac_current | state.need_jac, newton_ok=out.converged, n_iter=out.iterations,
            eta=out.eta, nfev=new.nfev + out.iterations)
        coeffs = _polynomial(D_new, q)
        f1 = jnp.sum(jnp.arange(MAX_ORDER + 1, dtype=y.dtype)[:, None] * coeffs, axis=0) / dt.astype(y.dtype)
        # Measured by the loop against the user's tolerances: scaled to the local ones.
        y_err = jnp.asarray(ERROR_CONST / self.local_tolerance, y.dtype)[q] * d
        return Step(y1=D_new[0], y_err=y_err, f1=f1, info=coeffs, state=new, ok=out.converged | out.nonfinite)

    def dense(self, f, t, y, dt, y1, f0, f1, info):
        return info

    def after_step(self, state_new: BDFState, state_old: BDFState, accept, dt, dt_next, err):
        q = state_new.order
        failed = ~state_new.newton_ok
        retry = failed & ~state_new.jac_current          # retry the same step with a fresh Jacobian
        safety = 0.9 * (2 * _newton.MAX_ITER + 1) / (2 * _newton.MAX_ITER + state_new.n_iter)
        safe_err = jnp.where(err > 0, err, 1.0)
        shrink = jnp.maximum(MIN_FACTOR, safety * safe_err ** (-1.0 / (q + 1)))
        dt_reject = jnp.where(failed, jnp.where(retry, dt, 0.5 * dt), dt * shrink.astype(dt.dtype))

        # Accepted: after q + 1 equal steps, pick the order (q - 1, q, q + 1) allowing the largest step.
        y_old, y_new, D = state_old.D[0], state_new.D[0], state_new.D
        const = jnp.asarray(ERROR_CONST, y_new.dtype)

        def norm(e):
            return error_norm(e, y_old, y_new, state_new.rtol, state_new.atol)

        # Orders q - 1, q, q + 1 judged from the differences (the loop's `err` is that of order q, but 0
        # with fixed steps, where the order is still chosen).
        err_m = jnp.where(q > 1, norm(const[q - 1] * D[q]), jnp.inf)
        err_q = norm(const[q] * D[q + 1])
        err_p = jnp.where(q < MAX_ORDER, norm(const[jnp.minimum(q + 1, MAX_ORDER)] * D[q + 2]), jnp.inf)
        norms = jnp.stack([err_m, err_q, err_p])
        expo = -1.0 / (q + jnp.arange(3)).astype(norms.dtype)
        factors = jnp.where(norms > 0, jnp.where(norms > 0, norms, 1.0) ** expo, jnp.inf)
        choose = state_new.n_equal >= q + 1
        best = jnp.argmax(factors)
        grow = jnp.minimum(MAX_FACTOR, safety * factors[best])
        dt_accept = jnp.where(choose, dt * grow.astype(dt.dtype), dt)

        accepted = state_new._replace(order=jnp.where(choose, q + best.astype(jnp.int32) - 1, q),
                                      n_equal=jnp.where(choose, 0, state_new.n_equal),
                                      jac_current=jnp.asarray(False))
        # Rejected or failed: the history stays, the Newton matrices and counters move on.
        rejected = state_new._replace(D=state_old.D, order=state_old.order, h=state_old.h, n_equal=jnp.zeros_like(q),
                                      need_jac=retry)
        state = jax.tree_util.tree_map(lambda a, r: jnp.where(accept, a, r), accepted, rejected)
        return state, jnp.where(accept, dt_accept, dt_reject)


def _start(y, f0, h):
    """Differences of a first-order start: ``D[0] = y``, ``D[1] = h f0``."""
    D = jnp.zeros((ROWS, y.shape[0]), y.dtype)
    return D.at[0].set(y).at[1].set(h.astype(y.dtype) * f0)


def _difference_update(D, q, d):
    """scipy's update after a step with correction ``d``: ``D[q+2] = d - D[q+1]``, ``D[q+1] = d`` and
    ``D[i] += D[i+1]`` downwards, i.e. ``D[i] <- sum_{i<=j<=q} D[j] + d`` for ``i <= q``."""
    rows = jnp.arange(ROWS)[:, None]
    live = jnp.where(rows <= q, D, 0)
    suffix = jnp.cumsum(live[::-1], axis=0)[::-1] + d
    above = jnp.take(D, q + 1, axis=0)
    return jnp.where(rows <= q, suffix, jnp.where(rows == q + 1, d, jnp.where(rows == q + 2, d - above, D)))


def _polynomial(D, q):
    """Coefficients in theta (step from theta = 0 to 1) of the interpolating polynomial of order ``q``."""
    live = (jnp.arange(MAX_ORDER + 1) <= q)[:, None]
    return jnp.asarray(_BASIS.T, D.dtype) @ jnp.where(live, D[:MAX_ORDER + 1], 0)
