"""`sciml.solve`: the front door for one trajectory, a thin function around the one pipeline
(`prepare` -> `Problem` + `Options` -> the jitted `integrate`)."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sciml import _validate as V
from sciml._flat import flatten
from sciml._integrate import integrate, to_loop
from sciml._problem import SAVEAT_MODES, Options, Problem, prepare
from sciml.solvers._events import Event
from sciml.solvers._solution import Solution
from sciml.solvers._status import Status, failed, raise_on_failure


def solve(f: Callable, y0: Any, t_span, args: Any = None, solver=None, saveat=None,
          rtol=1e-6, atol=1e-6, dt0=None, max_steps: int = 100_000, adjoint=None,
          events: Sequence[Event] | None = None, throw: bool = True, adaptive: bool = True,
          max_step=None, event_records: int = 1, jac: Callable | None = None, backend: str = "auto",
          controller=None, jac_sparsity=None, mass_matrix=None, init: str = "solve") -> Solution:
    """Solve the ODE ``dy/dt = f(t, y, args)`` from ``t_span[0]`` to ``t_span[1]``.

    Args:
        f: vector field ``f(t, y, args)`` returning the structure, shapes and (a dtype no wider than
            the state's) of ``y``.
        y0: initial state, any pytree of floating or complex arrays.
        t_span: ``(t0, t1)``; ``t1 < t0`` integrates backwards in time.
        args: anything ``f`` needs (e.g. parameters from ``sciml.layers``); differentiable.
        solver: a solver from ``sciml.solvers`` (default ``Tsit5()``).
        saveat: ``None`` (final state only), an array of times inside ``t_span`` (sorted in the
            direction of integration), ``"steps"`` (every accepted step) or ``"dense"`` (every step
            plus the continuous extension, read with ``sol.evaluate(t)``).
        rtol: relative tolerance, a scalar or a pytree like ``y0``.
        atol: absolute tolerance, a scalar or a pytree like ``y0``.
        dt0: initial step; ``None`` picks it automatically (Hairer's algorithm). Required with
            ``adaptive=False``.
        max_steps: bound on step attempts; hitting it is a failure (``Status.MAX_STEPS``).
        adjoint: how gradients are computed, an object from ``sciml.adjoints`` (default ``Auto()``).
        events: a list of :class:`sciml.Event`.
        throw: raise :class:`SolveError` on failure (inside ``jit``: a runtime error at the boundary).
            With ``throw=False`` inspect ``sol.status`` / ``sol.message()``.
        adaptive: ``False`` takes fixed steps of ``dt0``.
        max_step: largest step allowed.
        event_records: how many crossings of each event to record in ``sol.event_ts``.
        jac: ``jac(t, y, args) -> (n, n)``, the Jacobian ``df/dy`` for a 1-D state ``y0`` of length
            ``n``, used by the stiff solvers in place of forward-mode autodiff of ``f`` (and by
            gradients through them, so it must be written with ``jax.numpy``).
        jac_sparsity: an ``(n, n)`` array or scipy sparse matrix, nonzero where ``df_i/dy_j`` may be
            nonzero (1-D ``y0``, stiff solvers): the Jacobian is then computed with one
            Jacobian-vector product per group of columns that share no row (a banded ``n``-state
            problem needs a few instead of ``n``). Ignored when ``jac`` is given.
        backend: where the forward solve runs. ``"jax"``: the XLA loop. ``"c"``: sciml's generated C
            kernel (``f`` translated from its jaxpr, compiled once with the system C compiler and
            cached), called from the compiled program as an XLA custom call; the same method, step
            control and statuses, several times less time per call and far less compile time. It
            serves ``saveat`` None or times, no ``events`` or ``jac``, the explicit Runge-Kutta
            methods and Rodas5P, float32/float64 states; gradients and tangents still go through the
            XLA loop of ``adjoint``. ``"auto"`` (default): ``"c"`` where it serves and a C compiler
            is found, else ``"jax"``.
        controller: the step-size controller, ``sciml.solvers.PIController()`` by default; also
            ``IController()`` and ``PIDController(...)`` (diffrax's parameterisation). ``max_step``
            overrides its ``dtmax``. Every backend honours it.
        mass_matrix: a constant ``(n, n)`` real array ``M`` for a 1-D state: solve ``M y' = f(t, y, args)``.
            A singular ``M`` (rows of zeros: algebraic equations ``0 = f_i``; in general ``N^T f = 0``
            over its left null space ``N``) is a DAE, solved by
            ``Rodas5P``, ``Rosenbrock23``, ``RadauIIA5`` and ``BDF``; other solvers take a non-singular
            ``M`` as ``y' = M^{-1} f``. Part of the compiled program (concrete; see docs/dae.md).
            Gradients: ``Direct``/``Forward`` (``Auto`` picks one).
        init: with a singular ``mass_matrix``: ``"solve"`` (default) solves the algebraic variables of
            ``y0`` at ``t0`` by Newton, moving ``y0`` along the null space of ``M`` only
            (``sol.stats["init_adjusted"]`` says whether it moved them),
            ``"check"`` fails (``Status.INCONSISTENT_INIT``) unless ``y0`` satisfies the algebraic
            equations to ``atol``, ``"none"`` trusts ``y0``.

    Returns:
        A :class:`Solution`: ``ts``, ``ys``, ``status``, ``stats``, ``evaluate`` and event fields.

    Dtypes: the state is integrated in ``result_type(y0, f(t0, y0, args))``; float32 stays float32,
    complex stays complex. Times keep the dtype of ``t_span`` (and ``saveat``) when given as arrays,
    else the state's real dtype; ``f``, events and ``jac`` always see ``t`` in the state's real dtype,
    so a float32 state with float64 times solves and differentiates alike.

    Example:
        >>> import jax.numpy as jnp, sciml
        >>> sol = sciml.solve(lambda t, y, k: -k * y, jnp.array([1.0]), (0.0, 1.0), args=2.0,
        ...                   saveat=jnp.array([0.5, 1.0]), rtol=1e-8, atol=1e-8)
        >>> bool(jnp.allclose(sol.ys[:, 0], jnp.exp(-2.0 * sol.ts)))
        True
    """
    problem, options = prepare(f, y0, t_span, args, solver=solver, saveat=saveat, rtol=rtol, atol=atol, dt0=dt0,
                               max_steps=max_steps, adjoint=adjoint, events=events, adaptive=adaptive,
                               max_step=max_step, event_records=event_records, jac=jac, backend=backend,
                               controller=controller, jac_sparsity=jac_sparsity, mass_matrix=mass_matrix,
                               init=init)
    sol = compiled(options)(problem)
    if options.mode in SAVEAT_MODES:
        sol = _trim(sol)
    sol = _diagnose_stiffness(sol, options, problem)
    return _throw(sol) if throw else sol


def compiled(options: Options) -> Callable[[Problem], Solution]:
    """The jitted ``integrate(options, problem)``, cached per options (uncached if one is unhashable)."""
    try:
        return _compiled_cached(options)
    except TypeError:  # an unhashable f or static arg: compile for this call only
        return jax.jit(functools.partial(integrate, options))


@functools.lru_cache(maxsize=256)
def _compiled_cached(options: Options):
    return jax.jit(functools.partial(integrate, options))


def _diagnose_stiffness(sol: Solution, options: Options, problem: Problem) -> Solution:
    """On a concrete failure of an explicit solver at max_steps or dt underflow, check whether the problem
    is stiff there (``_stiffness.py``) so that the message can say so. Costs nothing on success."""
    status = V.concrete(sol.status)
    if (status is None or np.ndim(status) or not failed(status) or getattr(options.solver, "stiff", False)
            or int(status) not in (Status.MAX_STEPS, Status.DT_UNDERFLOW)):
        return sol
    try:
        probe = _stiffness_probe(options)
    except TypeError:  # an unhashable option (as in `compiled`): build it for this call only
        probe = _stiffness_probe.__wrapped__(options)
    stiff = probe(problem, sol.t_final, sol.y_final, sol._last_dt)
    return _replace(sol, _looks_stiff=bool(stiff))


@functools.lru_cache(maxsize=32)
def _stiffness_probe(options: Options):
    from sciml.solvers._stiffness import looks_stiff, stability_bound

    bound = stability_bound(options.solver)

    def probe(problem, t_final, y_final, dt):
        p = to_loop(options, dataclasses.replace(problem, ts=None))
        y = flatten(y_final)[0].astype(p.y0.dtype)
        return looks_stiff(lambda s, v: p.f(s, v, p.args), t_final * p.direction, y, dt, p.rtol, p.atol, bound)

    return jax.jit(probe)


def _trim(sol: Solution) -> Solution:
    """Outside ``jit``: the step records cut to the steps taken (under a user's ``jit`` they stay padded)."""
    n = V.concrete(sol._n_steps)
    if n is None or np.ndim(n):
        return sol
    n = int(n)
    ys = jax.tree_util.tree_map(lambda x: x[: n + 1], sol.ys)
    return _replace(sol, ts=sol.ts[: n + 1], ys=ys)


def _replace(sol, **kw):
    return dataclasses.replace(sol, **kw)


def _throw(sol: Solution) -> Solution:
    """Raise on failure: at once when the status is concrete, else at run time (see `raise_on_failure`)."""
    status = V.concrete(sol.status)
    if status is not None:
        sol.raise_if_failed()
        return sol
    ys, y_final = raise_on_failure((sol.ys, sol.y_final), sol.status, sol.t_final, sol._last_dt,
                                   sol._max_steps, solver_stiff=sol._solver_stiff,
                                   time_dtype=jnp.dtype(sol.t_final.dtype).name)
    return _replace(sol, ys=ys, y_final=y_final)
