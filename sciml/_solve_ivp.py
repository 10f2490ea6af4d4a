"""`sciml.solve_ivp`: `scipy.integrate.solve_ivp`'s call, numpy in and out, compiled and cached.

Simulation pipelines written against scipy switch by changing one import: the same arguments (``args``,
``events`` with ``terminal``/``direction`` attributes, ``jac``, ``jac_sparsity``, ``vectorized``,
``first_step``, ``max_step``, scipy's method names and classes), the same result (`OdeResult`,
`OdeSolution`) and scipy's exception types. The vector field is traced with JAX; the compiled solve is
cached per (fun, method, shapes, dtypes, options), so repeated calls from a pipeline do not recompile.
A front door of the one pipeline: its arguments go through `prepare` (named as scipy names them), and
the solve runs in the generated kernel on the host where it serves, else in the jitted `integrate`.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import warnings
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sciml import _validate as V
from sciml import _validate_scipy as VS
from sciml._callback_field import known_python_field, solve_with_callback
from sciml._integrate import integrate
from sciml._ode_result import OdeResult, OdeSolution, no_step_result, result
from sciml._problem import prepare
from sciml._validate import Names
from sciml.kernel import solve_on_host
from sciml.solvers._events import Event

__all__ = ["solve_ivp", "OdeResult", "OdeSolution"]

#: scipy's method names (and the names of its solver classes) -> sciml's methods
SCIPY_METHODS = {"RK23": "Bosh3", "RK45": "Dopri5", "DOP853": "Dopri8", "Radau": "RadauIIA5", "BDF": "BDF",
                 "LSODA": "AutoSwitch"}
_SUPPORTED_OPTIONS = ("max_steps", "max_events", "controller", "jac", "jac_sparsity")
#: what JAX raises while tracing a field written with NumPy or with Python control flow on values
UNTRACEABLE = (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError,
               jax.errors.TracerIntegerConversionError)

#: how `solve_ivp` names the pipeline's arguments in messages
IVP = Names(saveat="t_eval", dt0="first_step", atol_example="1e-9")


def solve_ivp(fun: Callable, t_span, y0, method="Tsit5", t_eval=None, dense_output: bool = False,
              events: Callable | Sequence[Callable] | None = None, vectorized: bool = False,
              args: tuple | None = None, rtol=1e-6, atol=1e-9, max_step=np.inf, first_step=None,
              backend: str = "auto", **options) -> OdeResult:
    """Solve an initial value problem like ``scipy.integrate.solve_ivp``, compiled with JAX.

    Args:
        fun: ``fun(t, y, *args) -> dy/dt`` for a 1-D ``y``, returning an array, a list or a tuple;
            written with ``jax.numpy`` it is traced and compiled.
        t_span: ``(t0, t1)``; ``t1`` may be infinite (the solve then ends at a terminal event, or
            fails at ``max_steps``), as in scipy.
        y0: initial state, 1-D, real or complex (integers are converted to float64, as scipy does);
            empty gives scipy's empty result.
        method: ``"Tsit5"`` (default), any method of ``sciml.solvers`` by name (``"Dopri5"``,
            ``"Vern7"``, ``"Rodas5P"``, ...) or as an instance, or scipy's names and classes:
            ``"RK23"``/``RK23`` (Bosh3), ``"RK45"`` (Dopri5), ``"DOP853"`` (Dopri8), ``"Radau"``
            (RadauIIA5), ``"BDF"`` (sciml's BDF), ``"LSODA"`` (AutoSwitch).
        t_eval: times at which to store the solution; ``None`` stores every step.
        dense_output: also return ``sol``, an `OdeSolution`.
        events: scipy-style event functions ``event(t, y, *args)`` with optional ``terminal`` (a bool,
            or a positive int: stop at that crossing) and ``direction`` attributes.
        vectorized: ``fun`` accepts ``y`` of shape ``(n, k)`` and returns ``(n, k)``; it is called with
            ``k = 1``.
        args: extra arguments for ``fun``, ``jac`` and the events, anything that unpacks (scipy's
            rule); traced, so new values don't recompile.
        rtol: relative tolerance (scipy's default is 1e-3; ours 1e-6). Values below ``100 * eps``
            are raised to it with a warning, as scipy does.
        atol: absolute tolerance.
        max_step: largest step allowed, as in scipy.
        first_step: the first step, taken exactly (default: chosen automatically).
        backend: ``"jax"`` runs the solve as a compiled XLA program; ``"c"`` runs ``fun`` translated to
            C in sciml's generated kernel (the same method, step control and status as ``"jax"``, the
            same answer up to rounding, without XLA's per-step overhead: the fast choice for repeated
            calls). The kernel serves calls with ``t_eval``, no ``events``, no ``dense_output``, an
            explicit Runge-Kutta method or ``"Rodas5P"`` and a float32/float64 ``y0``; it needs a C
            compiler. ``"auto"`` (default) picks ``"c"`` where it serves and ``"jax"`` elsewhere.
        options: scipy's ``jac`` (a callable ``jac(t, y, *args)`` or a constant ``(n, n)`` array or
            sparse matrix) and ``jac_sparsity`` (an ``(n, n)`` pattern: the Jacobian is computed with
            one product per group of independent columns), both used by the stiff methods and
            ignored with scipy's warning by the others; and sciml's ``max_steps`` (default 100000),
            ``max_events`` (crossings recorded per event, 64), ``controller`` (a step-size
            controller, as for `sciml.solve`).

    Returns:
        An :class:`OdeResult` with scipy's fields; ``y`` has shape ``(n, len(t))``.

    Raises:
        ValueError: for an unknown ``method`` or option, a bad ``t_span``, ``y0``, ``t_eval``,
            tolerance, ``first_step``, ``max_step``, ``jac``, ``jac_sparsity`` or event ``terminal``
            (each message names the argument), or ``backend="c"`` for a call the kernel does not serve.
        TypeError: ``args`` that cannot be unpacked (scipy's message).
        sciml.ensemble.BackendUnavailableError: ``backend="c"`` without a C compiler.

    Example:
        >>> import numpy as np, sciml
        >>> res = sciml.solve_ivp(lambda t, y: [-0.5 * y[0], -y[1]], (0.0, 10.0), [2.0, 4.0], t_eval=[0.0, 10.0])
        >>> res.success, res.y.shape
        (True, (2, 2))
    """
    unknown = set(options) - set(_SUPPORTED_OPTIONS)
    if unknown:
        raise ValueError(f"`solve_ivp` got unsupported option(s) {sorted(unknown)}; supported: "
                         f"{list(_SUPPORTED_OPTIONS)}.")
    solver = _solver_for(method)
    args = VS.scipy_args(args)
    y0 = np.asarray(y0)
    if y0.ndim != 1:
        raise ValueError(f"`y0` must be 1-D, as in scipy; got shape {y0.shape}.")
    if not np.issubdtype(y0.dtype, np.inexact):
        y0 = y0.astype(np.float64)
    t0, t1 = VS.scipy_t_span(t_span)
    rtol = VS.scipy_rtol(_host_tol(rtol))
    events = [] if events is None else ([events] if callable(events) else list(events))
    event_keys = tuple(_event_key(e, i) for i, e in enumerate(events))
    if y0.size == 0:                    # scipy's result without a step (the pipeline needs a component)
        return no_step_result(y0, t0, t1, t_eval, dense_output, len(events))
    jac, jac_sparsity, constant_jac = _jacobian_options(solver, options.get("jac"), options.get("jac_sparsity"),
                                                        y0.size)
    max_events = int(options.get("max_events", 64))
    if not max_step > 0:
        raise ValueError(f"`max_step` must be positive; got {max_step}. Leave it out (np.inf) for no limit.")
    if first_step is not None and not 0 < first_step <= abs(t1 - t0):
        raise ValueError(f"`first_step` must be in (0, |t1 - t0|] = (0, {abs(t1 - t0)}]; got {first_step}. "
                         f"Leave it out to have the first step chosen automatically.")
    if t_eval is not None:
        t_eval = np.asarray(t_eval, dtype=np.float64)
    mode = (("ts" if t_eval is not None else "steps") if not dense_output
            else ("dense" if t_eval is None else "ts+dense"))
    # float64 scalars, so that a Python float and a NumPy scalar select the same compiled program
    problem, opts = prepare(
        _scipy_field(_code_key(fun), bool(vectorized)), y0, (np.float64(t0), np.float64(t1)), args, solver=solver,
        saveat={"ts": t_eval, "steps": "steps"}.get(mode, "dense"), rtol=rtol, atol=_host_tol(atol),
        dt0=None if first_step is None else np.float64(first_step), max_steps=options.get("max_steps", 100_000),
        events=_sciml_events(event_keys) or None, max_step=_finite_or_none(max_step), event_records=max_events,
        jac=jac, jac_sparsity=jac_sparsity, backend=backend, controller=options.get("controller"), names=IVP,
        scipy_span=True)
    if mode == "ts+dense":
        V.check_saveat(t_eval, t0, t1, IVP)
    if t0 == t1:                        # checked like any call, but no program is compiled to take no step
        return no_step_result(y0, t0, t1, t_eval, dense_output, len(events))
    call = _Call(problem, opts, mode, t0, t1, t_eval, len(events), max_events, y0)
    try:
        res = (solve_with_callback(call, fun, bool(vectorized), None, _solve_traced)
               if known_python_field(opts.f) else _solve_traced(call))
    except UNTRACEABLE as err:
        res = _solve_python_field(call, fun, bool(vectorized), err)
    if constant_jac:
        res["njev"] = 0          # scipy counts no evaluation of a constant Jacobian
    return res


@dataclasses.dataclass(frozen=True)
class _Call:
    """One checked `solve_ivp` call: the pipeline's problem and options plus what shapes the result."""

    problem: object
    options: object
    mode: str                      # "ts" | "steps" | "dense" | "ts+dense"
    t0: float
    t1: float
    t_eval: np.ndarray | None
    n_events: int
    max_events: int
    y0: np.ndarray


def _solve_traced(call: _Call) -> OdeResult:
    """The solve with ``fun`` traced by JAX: the kernel on the host where it serves, else the jitted
    pipeline. Raises one of `UNTRACEABLE` for a field JAX cannot trace."""
    c = call
    if c.options.backend != "jax":
        out = solve_on_host(c.problem, c.options)
        if out is not None:
            return result(out, None, "ts", c.t0, c.t1, c.t_eval, 0, c.options.max_steps, c.max_events)
    host, device = _compiled(dataclasses.replace(c.options, backend="jax"), c.mode)(
        c.problem, c.t_eval if c.mode == "ts+dense" else None)
    return result(jax.device_get(host), device, c.mode, c.t0, c.t1, c.t_eval, c.n_events, c.options.max_steps,
                  c.max_events, y0=c.y0)


def _solve_python_field(call: _Call, fun: Callable, vectorized: bool, err: Exception) -> OdeResult:
    """The one place where a field that JAX cannot trace (NumPy, Python ``if`` on ``t``) is served: the
    kernel's loop or the XLA loop with ``fun`` called back (`sciml._callback_field`)."""
    return solve_with_callback(call, fun, vectorized, err, _solve_traced)


def _host_tol(tol):
    return np.float64(tol) if np.ndim(tol) == 0 else np.asarray(tol, np.float64)


def _finite_or_none(max_step):
    return float(max_step) if np.isfinite(max_step) else None


def _code_key(fn, depth: int = 0):
    """``fn``, or for a plain Python function a key equal for every closure of the same code over equal
    immutable values: a scipy-style pipeline that defines its field inside a loop or a function
    (a new function object each time) finds the program compiled for the first one."""
    if not inspect.isfunction(fn) or depth > 2 or fn.__kwdefaults__:
        return fn
    values = []
    for cell in fn.__closure__ or ():
        try:
            value = cell.cell_contents
        except ValueError:                     # an empty cell
            return fn
        if inspect.isfunction(value):
            value = _code_key(value, depth + 1)
        elif type(value) not in (int, float, complex, bool, str, type(None)):
            return fn
        values.append((type(value), value))
    defaults = fn.__defaults__ or ()
    if any(type(d) not in (int, float, complex, bool, str, type(None)) for d in defaults):
        return fn
    return _CodeKey(fn, (fn.__code__, id(fn.__globals__), tuple(values), tuple((type(d), d) for d in defaults)))


class _CodeKey:
    """A function compared by its code and captured values (`_code_key`); calls the first one seen."""

    def __init__(self, fn, key):
        self.fn, self.key = fn, key

    def __eq__(self, other):
        return isinstance(other, _CodeKey) and self.key == other.key

    def __hash__(self):
        return hash(self.key)

    def __call__(self, *a):
        return self.fn(*a)


@functools.lru_cache(maxsize=128)
def _scipy_field(fun, vectorized: bool):
    """``fun(t, y, *args)`` as the pipeline's ``f(t, y, args)``, its list, tuple or NumPy return made an
    array: one object per (``fun``, ``vectorized``), so compiled programs and kernels made for it are
    found in the caches on the next call. A ``vectorized`` fun is called on ``y`` of shape ``(n, 1)``."""
    if vectorized:
        return lambda t, y, a: jnp.reshape(jnp.asarray(fun(t, y[:, None], *a)), jnp.shape(y))
    return lambda t, y, a: _as_array(fun(t, y, *a))


def _as_array(out):
    return out if isinstance(out, jax.Array) else jnp.asarray(out)


@functools.lru_cache(maxsize=128)
def _sciml_events(keys) -> tuple:
    """scipy-style event functions as `sciml.Event`s, one object per (function, terminal, direction)."""
    return tuple(Event(lambda t, y, a, e=e: e(t, y, *a), terminal=terminal, direction=direction, at_start=True)
                 for e, terminal, direction in keys)


def _event_key(event, i: int):
    if not callable(event):
        raise TypeError(f"`events` must be callables event(t, y, *args) (or one); got {event!r} at index {i}.")
    return (_code_key(event), VS.scipy_terminal(event, i), int(np.sign(getattr(event, "direction", 0))))


def _solver_for(method):
    """The sciml solver for scipy's ``method`` (a name, one of scipy's classes) or sciml's (a name or
    an instance; an instance is checked by the pipeline)."""
    from sciml import solvers

    if isinstance(method, type) and any(c.__name__ == "OdeSolver" for c in method.__mro__):
        if method.__name__ not in SCIPY_METHODS or not method.__module__.startswith("scipy."):
            raise ValueError(f"`method={method.__name__}`: a scipy `OdeSolver` subclass runs only inside scipy; "
                             f"pass one of scipy's names {list(SCIPY_METHODS)} or a sciml method.")
        method = method.__name__
    if not isinstance(method, str):
        return method
    name = SCIPY_METHODS.get(method, method)
    cls = getattr(solvers, name, None)
    if cls is None and method in SCIPY_METHODS:
        raise ValueError(f"`method={method!r}` runs `sciml.solvers.{name}`, which this version of sciml does not "
                         f"have; use method='Rodas5P' or method='BDF' (stiff solvers) instead.")
    if cls is None or not isinstance(cls, type):
        known = [c.__name__ for c in solvers.ALL] + list(SCIPY_METHODS)
        raise ValueError(f"`method` must be one of {known}, a scipy solver class or a sciml solver; got "
                         f"unknown method {method!r}.")
    return cls()


def _jacobian_options(solver, jac, jac_sparsity, n: int):
    """``(jac, jac_sparsity, constant)`` for the pipeline: scipy's ``jac`` (callable, array or sparse
    matrix) as ``jac(t, y, args)``; both dropped with scipy's warning for a method without a Jacobian."""
    given = [name for name, value in (("jac", jac), ("jac_sparsity", jac_sparsity)) if value is not None]
    if not given:
        return None, None, False
    if not getattr(solver, "stiff", False):
        warnings.warn("The following arguments have no effect for a chosen solver: "
                      f"{', '.join(f'`{x}`' for x in given)}.", UserWarning, stacklevel=3)
        return None, None, False
    if jac is None:
        return None, jac_sparsity, False
    if callable(jac):
        return _scipy_jac(_code_key(jac)), None, False
    matrix = VS.scipy_jac_matrix(jac, n)
    return _constant_jac(matrix.tobytes(), matrix.shape, matrix.dtype.str), None, True


@functools.lru_cache(maxsize=128)
def _scipy_jac(jac):
    """scipy's ``jac(t, y, *args)`` as ``jac(t, y, args)``; a scalar is the ``(1, 1)`` Jacobian of one
    component (scipy's LSODA takes it)."""
    return lambda t, y, a: _jac_array(jac(t, y, *a), y.shape[0])


def _jac_array(out, n: int):
    """A Jacobian returned as an array, a list or a scipy sparse matrix (concrete values: the
    Python-field path), a scalar for one component, as the ``(n, n)`` array."""
    out = _as_array(out.toarray() if hasattr(out, "toarray") else out)
    return jnp.reshape(out, (1, 1)) if n == 1 and out.ndim == 0 else out


@functools.lru_cache(maxsize=32)
def _constant_jac(data: bytes, shape, dtype: str):
    """A constant Jacobian as ``jac(t, y, args)``, one object per matrix (its compiled programs are reused)."""
    matrix = np.frombuffer(data, np.dtype(dtype)).reshape(shape)
    return lambda t, y, a: jnp.asarray(matrix)


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
