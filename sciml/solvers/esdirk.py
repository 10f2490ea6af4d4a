"""ESDIRK methods: implicit stages solved one after another by a simplified Newton iteration.

All implicit stages share the diagonal ``gamma``, so they share the iteration matrix ``I - h gamma J``:
it is factored once per step size and reused by every stage, and across steps while the step size is
unchanged. ``J`` is kept across steps as long as Newton converges quickly and re-formed when a stage
converges slower than ``SLOW_RATE``, when a step is rejected with an old ``J``, or when Newton fails; a
failure with a fresh ``J`` halves the step. Step-size changes within ``[1, 1.2]`` are not taken, so
the factors stay valid (Hairer & Wanner's RADAU5 strategy, *Solving ODEs II*, Sec. IV.8).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from sciml.solvers import _linsolve as L
from sciml.solvers import _newton
from sciml.solvers import _stiff_tableaus as T
from sciml.solvers._base import AbstractSolver, Step
from sciml.solvers._stiff_tableau import ESDIRKTableau

#: Newton iterations a stage may take (diffrax allows 10, scipy's Radau 6)
MAX_ITER = 7
#: a contraction factor above this in any stage makes the next step re-form the Jacobian
SLOW_RATE = 0.02
#: step-size growth kept out (the factors are reused instead), as in RADAU5
HOLD_STEP = (1.0, 1.2)


class ESDIRKState(NamedTuple):
    J: jax.Array             # the Jacobian in use (possibly from an earlier step)
    lu: L.LU                 # factors of I - lu_dt * gamma * J
    lu_dt: jax.Array         # the step size the factors are for
    need_jac: jax.Array      # form J at the next attempt
    jac_current: jax.Array   # J was formed at the current (t, y)
    eta: jax.Array           # Newton's convergence estimate, carried to the next solve
    newton_ok: jax.Array     # the last attempt's stages all converged
    slowest: jax.Array       # largest Newton contraction factor among the last attempt's stages
    rtol: Any
    atol: Any
    nfev: jax.Array
    njev: jax.Array
    nlu: jax.Array


def default_tolerance(dtype):
    """The tolerance a step uses when no solve bound one (a step re-run alone, e.g. by an adjoint)."""
    return jnp.sqrt(jnp.finfo(dtype).eps).astype(dtype)


@dataclasses.dataclass(frozen=True)
class AbstractESDIRK(AbstractSolver):
    """Base of the ESDIRK family; a subclass sets ``tableau``."""

    tableau: ClassVar[ESDIRKTableau]
    stiff = True
    fsal = True                  # the last stage is y1, and its derivative comes with it
    fevals_per_step = 0          # Newton's evaluations vary: counted in the state

    def init(self, f, t0, y0, f0, dt0) -> ESDIRKState:
        n, dtype = y0.shape[0], y0.dtype
        real = jnp.zeros((), dtype).real.dtype          # Newton's rates and norms (a complex state too)
        zero, tol = jnp.zeros((), jnp.int32), default_tolerance(real)
        return ESDIRKState(
            J=jnp.zeros((n, n), dtype), lu=L.empty_lu(n, dtype), lu_dt=jnp.zeros_like(dt0),
            need_jac=jnp.asarray(True), jac_current=jnp.asarray(False), eta=jnp.ones((), real),
            newton_ok=jnp.asarray(True), slowest=jnp.zeros((), real), rtol=tol, atol=tol, nfev=zero,
            njev=zero, nlu=zero)

    def bind_tolerances(self, state: ESDIRKState, rtol, atol) -> ESDIRKState:
        return state._replace(rtol=rtol, atol=atol)

    def stats(self, state: ESDIRKState) -> dict:
        return {"nfev": state.nfev, "njev": state.njev, "nlu": state.nlu}

    def step(self, f, t, y, f0, dt, state: ESDIRKState) -> Step:
        tab = self.tableau
        h = dt.astype(y.dtype)
        hg = h * tab.gamma
        J = lax.cond(state.need_jac, lambda: lax.stop_gradient(L.jacobian(f, t, y)), lambda: state.J)
        refactor = state.need_jac | (dt != state.lu_dt)
        lu = lax.cond(refactor, lambda: L.factor(J, hg), lambda: state.lu)
        lu = jax.tree_util.tree_map(lax.stop_gradient, lu)
        scale = state.atol + state.rtol * jnp.abs(y)
        tol = _newton.tolerance(state.rtol, scale.dtype)

        # The implicit stages run in a loop over the stage index (one Newton solve to compile, not six).
        A, P = (jnp.asarray(m, y.dtype) for m in (tab.a_matrix, tab.predictor_matrix))
        c = jnp.asarray(tab.c, t.dtype)

        def stage(i, carry):
            zs, eta, ok, nonfinite, nfev, slowest = carry
            base = y + A[i] @ zs
            t_i = t + c[i].astype(t.dtype) * dt

            def residual(x):
                return hg * f(t_i, base + x) - x

            out = _newton.solve(residual, tab.gamma * (P[i] @ zs), lambda r: L.solve(lu, r),
                                L.dense_tangent_solve, scale, tol, eta, active=ok, max_iter=MAX_ITER)
            return (zs.at[i].set(out.x / tab.gamma), jnp.where(ok, out.eta, eta), ok & out.converged,
                    nonfinite | out.nonfinite, nfev + out.iterations, jnp.maximum(slowest, out.rate))

        zs = jnp.zeros((tab.stages, y.shape[0]), y.dtype).at[0].set(h * f0)
        zs, eta, ok, nonfinite, nfev, slowest = lax.fori_loop(
            1, tab.stages, stage, (zs, state.eta, jnp.asarray(True), jnp.asarray(False), jnp.zeros((), jnp.int32),
                                   jnp.zeros((), scale.dtype)))
        y1 = y + A[-1] @ zs + tab.gamma * zs[-1]
        new = state._replace(
            J=J, lu=lu, lu_dt=dt, need_jac=jnp.asarray(False), jac_current=state.jac_current | state.need_jac,
            eta=eta, newton_ok=ok, slowest=slowest, nfev=state.nfev + nfev,
            njev=state.njev + state.need_jac.astype(jnp.int32), nlu=state.nlu + refactor.astype(jnp.int32))
        # A non-finite iterate is not a convergence failure: y1 is NaN and the step fails as non-finite.
        return Step(y1=y1, y_err=jnp.asarray(tab.b_err, y.dtype) @ zs, f1=zs[-1] / h, info=None, state=new,
                    ok=ok | nonfinite)

    def after_step(self, state_new: ESDIRKState, state_old, accept, dt, dt_next, err):
        failed = ~state_new.newton_ok
        # Newton failed: with an old J retry the same step with a fresh one, else halve the step.
        retry = failed & ~state_new.jac_current
        # Rejected for its error with an old J: re-form it (the state did not move).
        stale = ~accept & ~failed & ~state_new.jac_current
        hold = accept & (dt_next >= HOLD_STEP[0] * dt) & (dt_next <= HOLD_STEP[1] * dt)
        dt_next = jnp.where(failed, jnp.where(retry, dt, 0.5 * dt), jnp.where(hold, dt, dt_next))
        need_jac = jnp.where(accept, state_new.slowest > SLOW_RATE, retry | stale)
        state = state_new._replace(need_jac=need_jac, jac_current=~accept & state_new.jac_current)
        return state, dt_next


@dataclasses.dataclass(frozen=True)
class Kvaerno5(AbstractESDIRK):
    """Kværnø's 5(4) ESDIRK method: A- and L-stable, stiffly accurate, seven stages (six implicit).

    A simplified Newton iteration solves each stage with one shared LU factorisation of
    ``I - h gamma J``, reused across stages and steps; a step whose Newton iteration does not converge
    is rejected and retried (with a fresh Jacobian, then smaller), never a hard failure unless the step
    size underflows (``Status.NEWTON_FAILED``). Dense output: cubic Hermite (between steps it is less
    accurate than at them; Rodas5P's and BDF's own interpolants are better for dense output). Prefer ``Rodas5P`` for
    small systems (no Newton iteration); Kvaerno5 is the ESDIRK peer of diffrax's method of the same
    name.

    Example:
        >>> import jax.numpy as jnp, sciml
        >>> lam = 1e4       # y' = -lam (y - cos t): y(1) = lam (lam cos 1 + sin 1) / (lam^2 + 1)
        >>> sol = sciml.solve(lambda t, y, a: -lam * (y - jnp.cos(t)), jnp.array([0.0]), (0.0, 1.0),
        ...                   solver=sciml.solvers.Kvaerno5(), rtol=1e-8, atol=1e-10)
        >>> exact = lam * (lam * jnp.cos(1.0) + jnp.sin(1.0)) / (lam**2 + 1)
        >>> bool(abs(sol.ys[-1, 0] - exact) < 1e-7), int(sol.stats["njev"]) < int(sol.stats["naccept"])
        (True, True)
    """

    tableau = T.KVAERNO5
    order = 5
    error_order = 5              # the embedded solution (stage 6) is of order 4
