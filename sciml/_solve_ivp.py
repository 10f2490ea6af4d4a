"""`sciml.solve_ivp`: `scipy.integrate.solve_ivp`'s call shape, numpy in and out, compiled and cached.

Simulation pipelines written against scipy switch by changing one import. The vector field is traced
with JAX (write it with ``jax.numpy``); the compiled solve is cached per (fun, method, shapes, dtypes,
options), so repeated calls from a pipeline do not recompile. A front door of the one pipeline: its
arguments go through `prepare` (named as scipy names them), and the solve runs in the generated kernel
on the host where it serves, else in the jitted `integrate`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sciml._integrate import integrate
from sciml._problem import prepare
from sciml._validate import Names, check_saveat
from sciml.kernel import solve_on_host
from sciml.solvers._events import Event
from sciml.solvers._status import Status, describe

#: scipy's names for the methods we provide
_ALIASES = {"RK45": "Dopri5", "DOP853": "Dopri8", "RK23": "Bosh3"}
#: scipy methods we do not provide, with the method to use instead
_REPLACEMENTS = {"Radau": "Rodas5P", "LSODA": "Rodas5P"}
_SUPPORTED_OPTIONS = ("max_steps", "max_events", "controller")


class OdeResult(dict):
    """scipy's ``OdeResult``: a dict whose keys are also attributes (``t, y, sol, t_events, y_events,
    nfev, njev, nlu, status, message, success``)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError as err:
            raise AttributeError(name) from err

    __setattr__ = dict.__setitem__

    def __repr__(self) -> str:
        keys = ", ".join(self.keys())
        return f"OdeResult({keys})"


class DenseSolution:
    """``sol(t)`` for ``dense_output=True``: shape ``(n,)`` for scalar ``t``, ``(n, len(t))`` otherwise."""

    def __init__(self, evaluate: Callable, t_min: float, t_max: float):
        self._evaluate = evaluate
        self.t_min, self.t_max = t_min, t_max

    def __call__(self, t):
        t = np.asarray(t)
        values = np.asarray(self._evaluate(jnp.asarray(t.ravel())))
        return values[0] if t.ndim == 0 else values.T


def solve_ivp(fun: Callable, t_span, y0, method: str = "Tsit5", t_eval=None, dense_output: bool = False,
              events: Callable | Sequence[Callable] | None = None, vectorized: bool = False,
              args: tuple = (), rtol=1e-6, atol=1e-9, max_step=np.inf, first_step=None,
              backend: str = "auto", **options) -> OdeResult:
    """Solve an initial value problem like ``scipy.integrate.solve_ivp``, compiled with JAX.

    Args:
        fun: ``fun(t, y, *args) -> dy/dt`` for a 1-D ``y``, written with ``jax.numpy``.
        t_span: ``(t0, t1)``.
        y0: initial state, 1-D (integers are converted to float64, as scipy does).
        method: ``"Tsit5"`` (default), ``"Dopri5"``, ``"Dopri8"``, ``"Vern7"``, ``"Bosh3"``, ``"Heun"``,
            the stiff ``"Rodas5P"``, ``"Rosenbrock23"``, ``"Kvaerno5"``, ``"BDF"`` (sciml's, for scipy's
            name), or scipy's ``"RK45"``, ``"DOP853"``, ``"RK23"``; ``"Radau"``/``"LSODA"`` raise an
            error naming ``"Rodas5P"``.
        t_eval: times at which to store the solution; ``None`` stores every step.
        dense_output: also return ``sol``, a callable continuous solution.
        events: scipy-style event functions ``event(t, y, *args)`` with optional ``terminal`` and
            ``direction`` attributes.
        args: extra arguments passed to ``fun`` (and events); traced, so new values don't recompile.
        rtol: relative tolerance (scipy's default is 1e-3; ours 1e-6).
        atol: absolute tolerance.
        max_step: largest step allowed, as in scipy.
        first_step: initial step, as in scipy (default: chosen automatically).
        backend: ``"jax"`` runs the solve as a compiled XLA program; ``"c"`` runs ``fun`` translated to
            C in sciml's generated kernel (the same method, step control and status as ``"jax"``, the
            same answer up to rounding, without XLA's per-step overhead: the fast choice for repeated
            calls). The kernel serves calls with ``t_eval``, no ``events``, no ``dense_output``, an
            explicit Runge-Kutta method or ``"Rodas5P"`` and a float32/float64 ``y0``; it needs a C
            compiler. ``"auto"`` (default) picks ``"c"`` where it serves and ``"jax"`` elsewhere.
        options: ``max_steps`` (default 100000), ``max_events`` (crossings recorded per event, 64),
            ``controller`` (a step-size controller, as for `sciml.solve`).

    Returns:
        An :class:`OdeResult` with scipy's fields; ``y`` has shape ``(n, len(t))``.

    Raises:
        ValueError: for an unknown ``method`` (with the name to use instead) or an unknown option, or
            ``backend="c"`` for a call the kernel does not serve (the message says which part).
        sciml.ensemble.BackendUnavailableError: ``backend="c"`` without a C compiler.

    Example:
        >>> import jax.numpy as jnp, sciml
        >>> res = sciml.solve_ivp(lambda t, y: -0.5 * y, (0.0, 10.0), [2.0, 4.0], t_eval=[0.0, 10.0])
        >>> res.success, res.y.shape
        (True, (2, 2))
    """
    unknown = set(options) - set(_SUPPORTED_OPTIONS)
    if unknown:
        raise ValueError(f"`solve_ivp` got unsupported option(s) {sorted(unknown)}; supported: "
                         f"{list(_SUPPORTED_OPTIONS)}.")
    if vectorized:
        raise ValueError("`vectorized=True` is not needed: sciml traces `fun` with JAX; drop the argument.")
    solver = _solver_for(method)
    y0 = np.asarray(y0)
    if y0.ndim != 1:
        raise ValueError(f"`y0` must be 1-D, as in scipy; got shape {y0.shape}.")
    if not np.issubdtype(y0.dtype, np.inexact):
        y0 = y0.astype(np.float64)
    t0, t1 = float(t_span[0]), float(t_span[1])
    max_events = int(options.get("max_events", 64))
    events = [] if events is None else ([events] if callable(events) else list(events))
    args = tuple(args) if isinstance(args, (tuple, list)) else (args,)
    if not max_step > 0:
        raise ValueError(f"`max_step` must be positive; got {max_step}. Leave it out (np.inf) for no limit.")
    if first_step is not None and not 0 < first_step <= abs(t1 - t0):
        raise ValueError(f"`first_step` must be in (0, |t1 - t0|] = (0, {abs(t1 - t0)}]; got {first_step}. "
                         f"Leave it out to have the first step chosen automatically.")
    if t_eval is not None:
        t_eval = np.asarray(t_eval, dtype=np.float64)
    mode = ("ts" if t_eval is not None else "steps") if not dense_output else ("dense" if t_eval is None else "ts+dense")
    # float64 scalars, so that a Python float and a NumPy scalar select the same compiled program
    problem, opts = prepare(
        _scipy_field(fun), y0, (np.float64(t0), np.float64(t1)), args, solver=solver,
        saveat={"ts": t_eval, "steps": "steps"}.get(mode, "dense"), rtol=_host_tol(rtol), atol=_host_tol(atol),
        dt0=None if first_step is None else np.float64(first_step), max_steps=options.get("max_steps", 100_000),
        events=_sciml_events(tuple(_event_key(e) for e in events)) or None, max_step=_finite_or_none(max_step),
        event_records=max_events, backend=backend, controller=options.get("controller"), names=IVP,
        zero_span=True)
    if mode == "ts+dense":
        check_saveat(t_eval, t0, t1, IVP)
    if backend != "jax":
        out = solve_on_host(problem, opts)
        if out is not None:
            return _result(out, None, "ts", t0, t1, t_eval, 0, opts.max_steps, max_events)
    host, device = _compiled(dataclasses.replace(opts, backend="jax"), mode)(
        problem, t_eval if mode == "ts+dense" else None)
    return _result(jax.device_get(host), device, mode, t0, t1, t_eval, len(events), opts.max_steps, max_events)


#: how `solve_ivp` names the pipeline's arguments in messages
IVP = Names(saveat="t_eval", dt0="first_step", atol_example="1e-9")


def _host_tol(tol):
    return np.float64(tol) if np.ndim(tol) == 0 else np.asarray(tol, np.float64)


def _finite_or_none(max_step):
    return float(max_step) if np.isfinite(max_step) else None


@functools.lru_cache(maxsize=128)
def _scipy_field(fun):
    """``fun(t, y, *args)`` as the pipeline's ``f(t, y, args)``: one object per ``fun``, so compiled
    programs and kernels made for it are found in the caches on the next call."""
    return lambda t, y, a: fun(t, y, *a)


@functools.lru_cache(maxsize=128)
def _sciml_events(keys) -> tuple:
    """scipy-style event functions as `sciml.Event`s, one object per (function, terminal, direction)."""
    return tuple(Event(lambda t, y, a, e=e: e(t, y, *a), terminal=terminal, direction=direction)
                 for e, terminal, direction in keys)


def _solver_for(method):
    from sciml import solvers

    if not isinstance(method, str):
        return method
    name = _ALIASES.get(method, method)
    if name in _REPLACEMENTS and not hasattr(solvers, name):
        raise ValueError(f"method {method!r} is not provided by sciml; use method={_REPLACEMENTS[name]!r} "
                         f"(a stiff solver) instead.")
    cls = getattr(solvers, name, None)
    if cls is None or not isinstance(cls, type):
        known = [c.__name__ for c in solvers.ALL] + list(_ALIASES)
        raise ValueError(f"unknown method {method!r}; choose one of {known}.")
    return cls()


def _event_key(event):
    return (event, bool(getattr(event, "terminal", False)), int(np.sign(getattr(event, "direction", 0))))


@functools.lru_cache(maxsize=128)
def _compiled(options, mode):
    """The jitted pipeline for a `solve_ivp` call, returning what the result needs in few transfers."""

    def run(problem, t_eval):
        sol = integrate(options, problem)
        ys = sol.ys
        if mode == "ts+dense":
            # Times past where the solve stopped (an event or a failure) were not reached: NaN, as in
            # the "ts" mode, never an extrapolation of the last step.
            reached = (t_eval - sol.t_final) * jnp.sign(problem.t1 - problem.t0) <= 0
            ys = jnp.where(reached[:, None], sol.evaluate(t_eval), jnp.nan)
        # Only what the result needs crosses to the host: the scalars travel as one float64 vector
        # (counts and codes are exact in float64).
        scalars = [sol.status, sol.t_final, sol._last_dt, sol._n_steps, sol.stats["nfev"],
                   sol.stats.get("njev", 0), sol.stats.get("nlu", 0)]
        host = {"ys": ys, "scalars": jnp.stack([jnp.asarray(x, jnp.float64) for x in scalars])}
        if mode != "ts":
            host["ts"] = sol.ts
        if options.events:
            host.update(event_ts=sol.event_ts, event_ys=sol.event_ys, event_count=sol.event_count)
        return host, (sol if mode in ("dense", "ts+dense") else None)

    return jax.jit(run)


def _result(out, sol, mode, t0, t1, t_eval, n_events, max_steps, max_events) -> OdeResult:
    """Build scipy's result from the host copies ``out`` (and the device solution ``sol`` for
    ``dense_output``)."""
    status, t_final, last_dt, n_steps, nfev, njev, nlu = out["scalars"]
    status = int(status)
    ts = out["ts"] if t_eval is None else t_eval
    ys = out["ys"]
    if mode in ("steps", "dense"):
        n = int(n_steps)
        ts, ys = ts[: n + 1], ys[: n + 1]
    elif status != Status.SUCCESS:
        reached = ~np.isnan(ys).any(axis=1)
        ts, ys = ts[reached], ys[reached]
    result = OdeResult(t=ts, y=ys.T, sol=None, t_events=None, y_events=None, nfev=int(nfev),
                       njev=int(njev), nlu=int(nlu))
    if sol is not None:
        result["sol"] = DenseSolution(jax.jit(sol.evaluate), min(t0, t1), max(t0, t1))
    if n_events:
        counts = out["event_count"]
        if np.any(counts > max_events):
            i = int(np.flatnonzero(counts > max_events)[0])
            raise ValueError(f"event {i} crossed zero {counts[i]} times, more than the {max_events} "
                             f"recorded; pass `max_events=` larger to `solve_ivp`.")
        result["t_events"] = [out["event_ts"][i, : counts[i]] for i in range(n_events)]
        result["y_events"] = [out["event_ys"][i, : counts[i]] for i in range(n_events)]
    if status == Status.SUCCESS:
        result.update(status=0, message="The solver successfully reached the end of the integration interval.",
                      success=True)
    elif status == Status.EVENT:
        result.update(status=1, message="A termination event occurred.", success=True)
    else:
        msg = describe(status, float(t_final), float(abs(last_dt)), max_steps)
        result.update(status=-1, message=msg[0].upper() + msg[1:], success=False)
    return result
