"""Automatic stiffness switching: a non-stiff and a stiff method in one solve (what LSODA does).

`AutoSwitch` is one solver to the loop: every step attempt is taken by one of its two methods, chosen
by a flag in its state, with ``lax.cond``. After each accepted step it estimates the stiffness
``|dt lambda| / bound`` (``dt``: the step the controller proposes next; ``lambda``: the dominant
eigenvalue of ``df/dy``; ``bound``: the length of the non-stiff method's real stability interval,
`_stiffness.stability_bound`) and switches with hysteresis in both directions, as OrdinaryDiffEq.jl's
``AutoSwitch``/``CompositeAlgorithm`` do:

* a run of more than ``maxstiffstep`` consecutive accepted non-stiff steps with stiffness above
  ``stifftol`` moves to the stiff method (the explicit method is held near its stability limit), and
  the next step grows by ``dtfac``;
* a run of more than ``maxnonstiffstep`` consecutive stiff steps with stiffness at most
  ``nonstifftol`` moves back (the explicit method would be stable at the steps the stiff one takes);
  the next step shrinks by ``dtfac`` and to at most the step just taken.

``lambda`` comes at no cost during non-stiff steps: for a method whose last two stages are both at
``t + dt`` (Tsit5, Dopri5), ``|k_s - k_{s-1}| / |Y_s - Y_{s-1}|`` (Hairer, Norsett & Wanner, *Solving
ODEs I*, Sec. II.10; OrdinaryDiffEq's ``eigen_est``). During stiff steps it is one power-iteration
step per step, ``|J v|`` with ``v`` carried from step to step (one Jacobian-vector product; ``v``
starts from the direction ``k_s - k_{s-1}`` of the last non-stiff step, which the explicit method has
already amplified along the stiff direction). Both are measured in the tolerance-scaled coordinates
of the error control, ``W = 1 / (atol + rtol |y|)`` (``W J W^-1`` has the eigenvalues of ``J``), so
that a stiff mode in a tiny component (ROBER's y2) is not hidden by large slow ones. LSODA
(Petzold 1983) switches on predicted step sizes of the other method instead; the counters here need
no such prediction.

Each step's dense output is the polynomial of the method that took it, and the loop records which one
(`method_index`) so that the Direct adjoint's reverse sweep replays the same method.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from sciml.solvers._base import AbstractSolver, Step
from sciml.solvers._explicit_rk import ExplicitRK, _combine
from sciml.solvers._stiffness import stability_bound
from sciml.solvers.bdf import BDF
from sciml.solvers.explicit import Tsit5
from sciml.solvers.rosenbrock import Rodas5P


class AutoSwitchState(NamedTuple):
    stiff_mode: jax.Array     # bool: the stiff method takes the next step
    count: jax.Array          # int32: > 0 consecutive stiff verdicts, < 0 consecutive non-stiff ones
    nonstiff: Any             # the non-stiff method's state
    stiff: Any                # the stiff method's state
    rho: jax.Array            # |lambda| estimated by the last attempt (the state's real dtype)
    v: jax.Array              # (n,) unit power-iteration vector (in tolerance-scaled coordinates)
    rtol: jax.Array           # the tolerances that scale the estimate (0 and 1 until bound)
    atol: jax.Array
    nfev: jax.Array           # int32 evaluations of f counted here (the sub-methods count theirs)
    nswitch: jax.Array        # int32 switches made
    nstiff: jax.Array         # int32 accepted steps taken by the stiff method


def _norm(x):
    return jnp.sqrt(jnp.sum(jnp.abs(x) ** 2))


def _weights(state: AutoSwitchState, y):
    """``1 / (atol + rtol |y|)`` (0 where that is 0): the estimate works in the coordinates the error
    control sees, where a stiff mode in a tiny component (ROBER's y2) is not drowned by large slow ones.
    The eigenvalues of ``W J W^-1`` are those of ``J``."""
    scale = state.atol + state.rtol * jnp.abs(lax.stop_gradient(y))
    return jnp.where(scale > 0, 1 / jnp.where(scale > 0, scale, 1), 0)


@dataclasses.dataclass(frozen=True)
class AutoSwitch(AbstractSolver):
    """Switch automatically between a non-stiff and a stiff method (``solve_ivp``'s ``"LSODA"``).

    Starts with ``nonstiff`` (``stiff_first=True``: with ``stiff``) and moves to the other method
    after a run of consecutive steps that says so (module docstring): a problem that is stiff only
    part of the time (an ignition, relaxation oscillations, the slow phase of a reaction) pays for
    Jacobians and LU factorisations only where they save steps. ``stats`` adds ``"nswitch"`` (switches
    made) and ``"nstiff"`` (accepted steps taken by ``stiff``) to the usual counts.

    Args:
        nonstiff: an adaptive, FSAL explicit Runge-Kutta method whose last two stages are both at
            ``t + dt`` and which needs no extra evaluations for dense output (``Tsit5``, ``Dopri5``).
        stiff: a one-step stiff method (``Rodas5P``, ``Rosenbrock23``, ``Kvaerno5``, ``RadauIIA5``; not the
            multistep ``BDF``).
        maxstiffstep, maxnonstiffstep: consecutive verdicts needed beyond these counts to switch to
            the stiff / back to the non-stiff method (OrdinaryDiffEq's defaults, 10 and 3).
        stifftol, nonstifftol: while the non-stiff method runs, a step counts as stiff when
            ``|dt lambda| / bound > stifftol``; while the stiff one runs, as non-stiff when it is
            ``<= nonstifftol``. OrdinaryDiffEq uses 0.9; an explicit method held by stability settles
            below its bound, the further the tighter the tolerance (Tsit5 on ROBER: ~1.0 of it at
            ``rtol=1e-6``, ~0.5 at ``1e-10``), hence 0.5 here.
        dtfac: the step grows by this factor on a switch to ``stiff`` and shrinks by it on the way back.

    The step-size controller uses the smaller ``error_order`` of the two methods. Under ``jax.vmap``
    (ensembles, batched gradients) ``lax.cond`` becomes a select: every step attempt computes both
    methods (for Tsit5 + Rodas5P: 6 + 8 evaluations, a Jacobian and an LU factorisation per attempt
    of every trajectory), so a batch costs about what Rodas5P alone costs per step, in the steps
    AutoSwitch takes. Complex states are refused (the stiff method needs a real Jacobian).

    Example:
        >>> import jax.numpy as jnp, sciml
        >>> flame = lambda t, y, a: y**2 - y**3          # slow growth, ignition at t ~ 1/delta, then stiff
        >>> delta = 1e-3
        >>> sol = sciml.solve(flame, jnp.array([delta]), (0.0, 2 / delta), rtol=1e-6, atol=1e-9,
        ...                   solver=sciml.solvers.AutoSwitch())
        >>> round(float(sol.ys[-1, 0]), 6), int(sol.stats["nswitch"]) >= 1
        (1.0, True)
    """

    nonstiff: AbstractSolver = Tsit5()
    stiff: AbstractSolver = Rodas5P()
    maxstiffstep: int = 10
    maxnonstiffstep: int = 3
    stifftol: float = 0.5
    nonstifftol: float = 0.5
    dtfac: float = 2.0
    stiff_first: bool = False

    fsal = True                # the stiff branch evaluates f(t + dt, y1) itself
    fevals_per_step = 0        # counted in the state: the two methods differ (see `stats`)
    fevals_dense = 0

    def __post_init__(self):
        ns, st = self.nonstiff, self.stiff
        if not (isinstance(ns, ExplicitRK) and ns.adaptive and ns.fsal and ns.tableau.c[-1] == ns.tableau.c[-2]
                and ns.tableau.b_err3 is None and ns.fevals_dense == 0):
            raise ValueError(
                f"`AutoSwitch(nonstiff=...)` must be an adaptive FSAL explicit Runge-Kutta method whose last "
                f"two stages share one time and whose dense output is free (its stiffness estimate comes "
                f"from those stages); got {ns!r}. Use `sciml.solvers.Tsit5()` or `Dopri5()`.")
        if (not (isinstance(st, AbstractSolver) and st.stiff is True and st.adaptive and st.fevals_dense == 0)
                or isinstance(st, BDF)):
            raise ValueError(
                f"`AutoSwitch(stiff=...)` must be an adaptive one-step stiff method; got {st!r}. Use "
                f"`sciml.solvers.Rodas5P()`, `Rosenbrock23()`, `Kvaerno5()` or `RadauIIA5()`.")
        for name in ("maxstiffstep", "maxnonstiffstep"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"`AutoSwitch({name}=...)` must be a non-negative int; got {value!r}.")
        for name in ("stifftol", "nonstifftol", "dtfac"):
            if not getattr(self, name) > 0:
                raise ValueError(f"`AutoSwitch({name}=...)` must be positive; got {getattr(self, name)!r}.")

    # What the loop reads as class attributes depends on the two methods here.
    order = property(lambda self: min(self.nonstiff.order, self.stiff.order))
    error_order = property(lambda self: min(self.nonstiff.error_order, self.stiff.error_order))

    @property
    def dense_degree(self) -> int:
        """The larger degree of the two methods' step polynomials (the other one is padded)."""
        return _dense_degree(self)

    @property
    def _bound(self) -> float:
        return stability_bound(self.nonstiff)

    def init(self, f, t0, y0, f0, dt0) -> AutoSwitchState:
        real = jnp.zeros((), y0.dtype).real.dtype
        zero = jnp.zeros((), jnp.int32)
        v0 = jnp.ones_like(y0) / jnp.sqrt(jnp.asarray(y0.shape[0], real))
        return AutoSwitchState(
            stiff_mode=jnp.asarray(self.stiff_first), count=zero, nonstiff=self.nonstiff.init(f, t0, y0, f0, dt0),
            stiff=self.stiff.init(f, t0, y0, f0, dt0), rho=jnp.zeros((), real), v=v0, rtol=jnp.zeros((), real),
            atol=jnp.ones((), real), nfev=zero, nswitch=zero, nstiff=zero)

    def bind_tolerances(self, state: AutoSwitchState, rtol, atol) -> AutoSwitchState:
        state = state._replace(rtol=jnp.asarray(rtol, state.rtol.dtype), atol=jnp.asarray(atol, state.atol.dtype))
        for name in ("nonstiff", "stiff"):
            bind = getattr(getattr(self, name), "bind_tolerances", None)
            if bind is not None:
                state = state._replace(**{name: bind(getattr(state, name), rtol, atol)})
        return state

    def method_index(self, state: AutoSwitchState) -> jax.Array:
        """Which method takes the next step (0: non-stiff, 1: stiff); the loop records it per step."""
        return state.stiff_mode.astype(jnp.int32)

    def with_method_index(self, state: AutoSwitchState, index) -> AutoSwitchState:
        """``state`` set to take its step with method ``index`` (the reverse sweep's replay)."""
        return state._replace(stiff_mode=jnp.asarray(index) != 0)

    def stats(self, state: AutoSwitchState) -> dict:
        out = {"nfev": state.nfev, "nswitch": state.nswitch, "nstiff": state.nstiff}
        for method, sub in ((self.nonstiff, state.nonstiff), (self.stiff, state.stiff)):
            for key, value in (method.stats(sub) if hasattr(method, "stats") else {}).items():
                out[key] = out[key] + value if key in out else value
        return out

    def step(self, f, t, y, f0, dt, state: AutoSwitchState) -> Step:
        def nonstiff():
            s = self.nonstiff.step(f, t, y, f0, dt, state.nonstiff)
            rho, v = self._explicit_estimate(y, dt, s, _weights(state, y))
            new = state._replace(nonstiff=s.state, rho=rho, v=jnp.where(rho > 0, v, state.v),
                                 nfev=state.nfev + self.nonstiff.fevals_per_step)
            return s.y1, s.y_err, s.f1, (s.info, _zeros(stiff_info)), new, s.ok

        def stiff():
            s = self.stiff.step(f, t, y, f0, dt, state.stiff)
            f1 = s.f1 if s.f1 is not None else f(t + dt, s.y1)
            # One power-iteration step on W J W^-1, only to choose the method (no derivatives).
            weights = _weights(state, y)
            u = state.v * jnp.where(weights > 0, 1 / jnp.where(weights > 0, weights, 1), 0).astype(y.dtype)
            w = weights.astype(y.dtype) * jax.jvp(lambda x: f(t, x), (lax.stop_gradient(y),), (u,))[1]
            rho = lax.stop_gradient(_norm(w))
            ok = jnp.isfinite(rho) & (rho > 0)
            v = jnp.where(ok, lax.stop_gradient(w) / jnp.where(ok, rho, 1).astype(w.dtype), state.v)
            nfev = state.nfev + self.stiff.fevals_per_step + (0 if self.stiff.fsal else 1) + 1
            new = state._replace(stiff=s.state, rho=jnp.where(ok, rho, 0), v=v, nfev=nfev)
            return s.y1, s.y_err, f1, (_zeros(nonstiff_info), s.info), new, s.ok

        nonstiff_info, stiff_info = _info_shapes(self, jax.ShapeDtypeStruct(y.shape, y.dtype),
                                                 jax.ShapeDtypeStruct(jnp.shape(dt), jnp.result_type(dt)))
        y1, y_err, f1, info, new, ok = lax.cond(state.stiff_mode, stiff, nonstiff)
        return Step(y1=y1, y_err=y_err, f1=f1, info=(state.stiff_mode, info), state=new, ok=ok)

    def _explicit_estimate(self, y, dt, s: Step, weights):
        """``|W (k_s - k_{s-1})| / |W (Y_s - Y_{s-1})|`` from the last two stages (both at ``t + dt``)
        and the direction ``W (k_s - k_{s-1})``; no evaluations of ``f``."""
        ks = [lax.stop_gradient(k) for k in s.info]
        h = lax.stop_gradient(dt).astype(y.dtype)
        y_prev = _combine(lax.stop_gradient(y), h, self.nonstiff.tableau.a[-2], ks)
        weights = weights.astype(y.dtype)
        dk = weights * (ks[-1] - ks[-2])
        num, den = _norm(dk), _norm(weights * (lax.stop_gradient(s.y1) - y_prev))
        rho = jnp.where((den > 0) & jnp.isfinite(num), num / jnp.where(den > 0, den, 1), 0)
        return rho, dk / jnp.where(num > 0, num, 1).astype(dk.dtype)

    def after_step(self, state_new: AutoSwitchState, state_old: AutoSwitchState, accept, dt, dt_next, err):
        mode = state_old.stiff_mode
        ns, dt_ns = self.nonstiff.after_step(state_new.nonstiff, state_old.nonstiff, accept, dt, dt_next, err)
        st, dt_st = self.stiff.after_step(state_new.stiff, state_old.stiff, accept, dt, dt_next, err)
        dt_next = jnp.where(mode, dt_st, dt_ns)
        # The step the controller proposes next (as OrdinaryDiffEq's `integrator.dt` when it chooses):
        # an explicit method held by stability takes steps inside its bound but keeps proposing larger ones.
        stiffness = state_new.rho * jnp.abs(dt_next).astype(state_new.rho.dtype) / self._bound
        verdict = stiffness > jnp.where(mode, self.nonstifftol, self.stifftol)
        count = state_old.count
        count = jnp.where(verdict, jnp.where(count < 0, 1, count + 1), jnp.where(count > 0, -1, count - 1))
        count = jnp.where(accept, count, state_old.count)
        to_stiff = accept & ~mode & (count > self.maxstiffstep)
        to_nonstiff = accept & mode & (count < -self.maxnonstiffstep)
        dt_next = jnp.where(to_stiff, dt_next * self.dtfac,
                            jnp.where(to_nonstiff, jnp.minimum(dt_next / self.dtfac, dt), dt_next))
        switched = to_stiff | to_nonstiff
        state = state_new._replace(
            stiff_mode=mode ^ switched, count=count, nonstiff=ns, stiff=st,
            nswitch=state_new.nswitch + switched.astype(jnp.int32),
            nstiff=state_new.nstiff + (accept & mode).astype(jnp.int32))
        return state, dt_next.astype(dt.dtype)

    def dense(self, f, t, y, dt, y1, f0, f1, info):
        stiff_mode, (ns_info, st_info) = info
        branches = (lambda: self.nonstiff.dense(f, t, y, dt, y1, f0, f1, ns_info),
                    lambda: self.stiff.dense(f, t, y, dt, y1, f0, f1, st_info))
        rows = self.dense_degree + 1

        def padded(branch):
            def run():
                c = branch()
                return jnp.concatenate([c, jnp.zeros((rows - c.shape[0],) + c.shape[1:], c.dtype)])
            return run

        return lax.cond(stiff_mode, padded(branches[1]), padded(branches[0]))


def _probe_field(t, y):
    """A stand-in field for measuring the shapes of a method's step (they do not depend on ``f``, which
    the loop hands over flat, in the state's dtype): tracing it costs nothing."""
    return y


@functools.lru_cache(maxsize=64)
def _info_shapes(solver: AutoSwitch, y, dt):
    """Shapes and dtypes of the two methods' ``Step.info`` for a state like ``y`` and a step like ``dt``
    (each branch of `AutoSwitch.step` fills the other's with zeros)."""
    def info(method):
        def run(y, dt):
            f0 = _probe_field(dt, y)
            return method.step(_probe_field, dt, y, f0, dt, method.init(_probe_field, dt, y, f0, dt)).info
        return jax.eval_shape(run, y, dt)
    return info(solver.nonstiff), info(solver.stiff)


@functools.lru_cache(maxsize=64)
def _dense_degree(solver: AutoSwitch) -> int:
    y, dt = jax.ShapeDtypeStruct((1,), jnp.float32), jax.ShapeDtypeStruct((), jnp.float32)
    infos = _info_shapes(solver, y, dt)

    def degree(method, info):
        def run(y, dt, info):
            return method.dense(_probe_field, dt, y, dt, y, y, y, info)
        return jax.eval_shape(run, y, dt, info).shape[0] - 1
    return max(degree(solver.nonstiff, infos[0]), degree(solver.stiff, infos[1]))


def _zeros(shapes):
    """Zeros with the structure, shapes and dtypes of ``shapes`` (from ``jax.eval_shape``)."""
    return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

