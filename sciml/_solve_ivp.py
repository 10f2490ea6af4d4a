"""`sciml.solve_ivp`: `scipy.integrate.solve_ivp`'s call shape, numpy in and out, compiled and cached.

Simulation pipelines written against scipy switch by changing one import. The vector field is traced
with JAX (write it with ``jax.numpy``); the compiled solve is cached per (fun, method, shapes, dtypes,
options), so repeated calls from a pipeline do not recompile.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sciml.solvers._events import Event
from sciml.solvers._status import Status, describe

#: scipy's names for the methods we provide
_ALIASES = {"RK45": "Dopri5", "DOP853": "Dopri8", "RK23": "Bosh3"}
#: scipy methods we do not provide, with the method to use instead
_REPLACEMENTS = {"Radau": "Rodas5P", "LSODA": "Rodas5P"}
_SUPPORTED_OPTIONS = ("max_steps", "max_events")


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
        options: ``max_steps`` (default 100000), ``max_events`` (crossings recorded per event, 64).

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
    max_steps = int(options.get("max_steps", 100_000))
    max_events = int(options.get("max_events", 64))
    events = [] if events is None else ([events] if callable(events) else list(events))
    args = tuple(args) if isinstance(args, (tuple, list)) else (args,)

    if t_eval is not None:
        t_eval = np.asarray(t_eval, dtype=np.float64)
    # Inside the compiled solve these values are traced, so `sciml.solve` cannot check them there.
    _check_inputs(t0, t1, y0, t_eval, rtol, atol, max_step, first_step)
    if backend not in ("auto", "jax", "c"):
        raise ValueError(f"`backend` must be \"auto\", \"jax\" or \"c\"; got {backend!r}.")
    if backend != "jax":
        unserved = _kernel_unserved(solver, y0, t0, t1, t_eval, dense_output, events)
        if backend == "c" and unserved:
            raise ValueError(f"`backend=\"c\"` does not serve this call: {unserved}. Use backend=\"jax\" "
                             f"(or \"auto\", which picks it).")
        if not unserved:
            out = _solve_with_kernel(fun, solver, y0, t0, t1, t_eval, args, rtol, atol, max_step, first_step,
                                     max_steps, required=backend == "c")
            if out is not None:
                return _result(out, None, "ts", t0, t1, t_eval, 0, max_steps, max_events)
    if t_eval is not None:
        mode = "ts"
    else:
        mode = "steps"
    if dense_output:
        mode = "dense" if t_eval is None else "ts+dense"
    # jax.jit caches per shape and dtype; this cache is per function and static option.
    compiled = _compiled(fun, solver, mode, tuple(_event_key(e) for e in events), max_steps, max_events,
                         float(max_step) if np.isfinite(max_step) else None, first_step is None)
    # numpy straight into the compiled program (one host-to-device hop); float64 scalars so that a
    # Python float and a numpy scalar select the same program.
    host, device = compiled(y0, np.float64(t0), np.float64(t1), t_eval, args, np.float64(rtol),
                            np.float64(atol),
                            np.float64(0.0 if first_step is None else first_step))
    return _result(jax.device_get(host), device, mode, t0, t1, t_eval, len(events), max_steps, max_events)


def _kernel_unserved(solver, y0, t0, t1, t_eval, dense_output, events) -> str:
    """Why the C kernel cannot run this call (empty when it can)."""
    from sciml._solve_kernel import solver_unserved, state_unserved

    if t0 == t1:
        return "it needs t0 != t1"
    if t_eval is None:
        return "it saves at `t_eval` only (pass `t_eval=`)"
    if dense_output:
        return "it has no `dense_output`"
    if events:
        return "it has no `events`"
    return state_unserved(y0.dtype) or solver_unserved(solver)


#: (fun, solver, shapes and dtypes) whose translation to C failed: "auto" goes straight to "jax" for them
_NO_KERNEL: set = set()


@functools.lru_cache(maxsize=128)
def _ensemble_f(fun):
    """``fun(t, y, *args)`` as the kernel's ``f(t, y, args)``: one object per ``fun``, so the kernel
    generated for it is found in the cache on the next call."""
    return lambda t, y, a: fun(t, y, *a)


#: per (fun, solver, shapes, dtypes, static args): the first call's launch, whose kernel, layout and
#: dtypes the later calls reuse, so that they skip the checks of `f` and the lookups that cost more than
#: a small solve
_LAUNCHES: dict = {}


def _solve_with_kernel(fun, solver, y0, t0, t1, t_eval, args, rtol, atol, max_step, first_step,
                       max_steps, required):
    """The host result `_result` reads, from the C kernel; ``None`` when ``fun`` cannot be translated
    (or no compiler is found) and ``required`` is false."""
    import dataclasses

    from sciml.ensemble import BackendUnavailableError, UnsupportedDtypeError, UnsupportedPrimitiveError
    from sciml.ensemble._c_backend import run_c, run_launch
    from sciml.ensemble._codegen import stat_names
    from sciml.ensemble._kernel import _aval, arg_inputs, host_tolerance, outputs, time_inputs
    from sciml.ensemble._problem import _is_array, prepare

    max_step = max_step if np.isfinite(max_step) else None
    leaves, treedef = jax.tree_util.tree_flatten(args)
    dynamic = [x for x in leaves if _is_array(x)]
    avals = tuple(_aval(x, False) if _is_array(x) else ("static", x) for x in leaves)
    key = (fun, solver, y0.shape, y0.dtype.str, treedef, avals, first_step is None, len(t_eval))
    try:
        template = _LAUNCHES.get(key)
    except TypeError:  # an unhashable `fun` or argument: the full path, every call
        key = template = None
    if template is None:
        if key is not None and key in _NO_KERNEL and not required:
            return None
        problem = prepare(_ensemble_f(fun), y0[None], (t0, t1), args, None, solver, t_eval, rtol, atol,
                          first_step, max_steps, True, max_step)
        try:
            launch, _ = run_c(problem, target="c-single")
        except (UnsupportedPrimitiveError, UnsupportedDtypeError, BackendUnavailableError):
            if required:
                raise
            if key is not None:
                _NO_KERNEL.add(key)
            return None
        if key is not None:
            if len(_LAUNCHES) >= 128:
                _LAUNCHES.pop(next(iter(_LAUNCHES)))
            _LAUNCHES[key] = launch
    else:
        spec, method = template.spec, template.method
        real, n = spec.state_dtype, spec.n
        tp, ts, m, _ = time_inputs(t0, t1, first_step, max_step, t_eval, spec.time_dtype)
        y_treedef, y_avals = jax.tree_util.tree_structure(y0), ((y0.shape, y0.dtype),)
        tol = np.concatenate([host_tolerance(tol, name, y_treedef, y_avals, real, n)
                              for tol, name in ((rtol, "rtol"), (atol, "atol"))])
        launch = dataclasses.replace(
            template, y0s=np.ascontiguousarray(y0[None], real),
            args=arg_inputs(dynamic, [a for a in avals if a[0] != "static"], 1, np, np.asarray),
            tp=tp, ts=ts, m=m, tol=tol, max_steps=max_steps, **outputs(spec, method, 1, m, np))
        run_launch(launch, "c-single")
    stats = dict(zip(stat_names(launch.method), launch.iout[0].tolist()))
    direction = 1.0 if t1 >= t0 else -1.0
    scalars = [stats["status"], launch.tout[0, 0] * direction, launch.tout[0, 1], 0, stats["nfev"],
               stats.get("njev", 0), stats.get("nlu", 0)]
    return {"ys": launch.ys[0], "scalars": np.asarray(scalars, np.float64)}


def _check_inputs(t0, t1, y0, t_eval, rtol, atol, max_step, first_step):
    """The checks scipy makes (and `sciml.solve` makes outside `jit`), with the fix in the message."""
    from sciml._solve_checks import _check_saveat, tolerance_problem

    if not (np.isfinite(t0) and np.isfinite(t1)):
        raise ValueError(f"`t_span` must be finite; got ({t0}, {t1}).")
    if not np.isfinite(y0).all():
        bad = int(np.flatnonzero(~np.isfinite(y0))[0])
        raise ValueError(f"`y0` must be finite; got y0[{bad}]={y0[bad]}.")
    for name, tol, example in (("rtol", rtol, "1e-6"), ("atol", atol, "1e-9")):
        problem = tolerance_problem(name, tol)
        if problem:
            raise ValueError(f"`{name}` {problem}. Use e.g. {name}={example}.")
    if not max_step > 0:
        raise ValueError(f"`max_step` must be positive; got {max_step}. Leave it out (np.inf) for no limit.")
    if first_step is not None and not 0 < first_step <= abs(t1 - t0):
        raise ValueError(f"`first_step` must be in (0, |t1 - t0|] = (0, {abs(t1 - t0)}]; got {first_step}. "
                         f"Leave it out to have the first step chosen automatically.")
    if t_eval is not None:
        if t_eval.ndim != 1:
            raise ValueError(f"`t_eval` must be 1-D; got shape {t_eval.shape}.")
        if t0 != t1:
            try:
                _check_saveat(t_eval, np.float64(t0), np.float64(t1))
            except ValueError as err:  # the same check as `sciml.solve`'s, in scipy's names
                raise ValueError(str(err).replace("saveat", "t_eval")) from None


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
def _compiled(fun, solver, mode, events, max_steps, max_events, max_step, auto_first_step):
    from sciml._solve import solve

    sciml_events = [Event(lambda t, y, a, e=e: e(t, y, *a), terminal=terminal, direction=direction)
                    for e, terminal, direction in events]
    saveat_mode = {"ts": "ts", "steps": "steps", "dense": "dense", "ts+dense": "dense"}[mode]

    # `max_step` is static in `sciml.solve` (it shapes the step control), so it is part of this key
    def run(y0, t0, t1, t_eval, args, rtol, atol, first_step):
        f = lambda t, y, a: fun(t, y, *a)  # noqa: E731
        saveat = t_eval if saveat_mode == "ts" else saveat_mode
        sol = solve(f, y0, (t0, t1), args=args, solver=solver, saveat=saveat, rtol=rtol, atol=atol,
                    dt0=None if auto_first_step else first_step, max_steps=max_steps, throw=False,
                    events=sciml_events or None, max_step=max_step,
                    event_records=max_events, backend="jax")  # the kernel path is `_solve_with_kernel`
        ys = sol.ys
        if mode == "ts+dense":
            # Times past where the solve stopped (an event or a failure) were not reached: NaN, as in
            # the "ts" mode, never an extrapolation of the last step.
            reached = (t_eval - sol.t_final) * jnp.sign(t1 - t0) <= 0
            ys = jnp.where(reached[:, None], sol.evaluate(t_eval), jnp.nan)
        # Only what the result needs crosses to the host, in few transfers: the scalars travel as one
        # float64 vector (counts and codes are exact in float64).
        scalars = [sol.status, sol.t_final, sol._last_dt, sol._n_steps, sol.stats["nfev"],
                   sol.stats.get("njev", 0), sol.stats.get("nlu", 0)]
        host = {"ys": ys, "scalars": jnp.stack([jnp.asarray(x, jnp.float64) for x in scalars])}
        if saveat_mode != "ts":
            host["ts"] = sol.ts
        if sciml_events:
            host.update(event_ts=sol.event_ts, event_ys=sol.event_ys, event_count=sol.event_count)
        return host, (sol if saveat_mode == "dense" else None)

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
