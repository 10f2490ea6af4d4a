"""`sciml.solve_ivp` for any Python callable: a field JAX cannot trace (NumPy, a Python ``if`` on ``t``,
a call into another library) runs with the integration loop compiled and only the field called back.

The choice is made once per field: `sciml.solve_ivp` traces ``fun`` the first time it sees it; a tracer
error there marks it as a Python field (`known_python_field`; ``backend="auto"`` and ``"c"`` go on
silently, ``backend="jax"`` raises), and its later calls come straight here. A Python field runs

* in the generated C kernel (`sciml.kernel.solve_python_field`): the kernel's loop, ``fun`` called
  through a ``ctypes`` function pointer, every accepted step (and its dense output) handed back the
  same way, Jacobians for the stiff methods from `PythonField.jacobian` (the user's ``jac``, else
  finite differences, grouped by ``jac_sparsity``); the fast path, for every call with an explicit
  Runge-Kutta method, Rodas5P, ROS34PW2, BDF or RadauIIA5 and a float32/float64 state, else
* in the jitted XLA loop with ``fun`` (and the events) as host calls (`sciml.kernel._host_call`:
  `jax.pure_callback`'s contract at ~1/9 of its cost on CPU) whose derivative is the same Jacobian:
  every feature of the traced path (events, every method, complex states), at some 20 us (CPU) per
  evaluation plus the field's own cost.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from sciml._callback_events import HostEvents
from sciml.kernel import solve_python_field
from sciml.kernel._host_call import host_call

#: per pipeline field (one per user ``fun``) that JAX could not trace: the error tracing it raised
_TRACE_ERRORS: dict = {}
#: the state dtype per (pipeline field, y0 dtype and shape, args dtypes): `fun` is probed once
_DTYPES: dict = {}
#: exceptions raised by ``fun`` inside the XLA loop's callbacks during the current solve (XLA would
#: otherwise turn them into a runtime error without the user's traceback)
_XLA_ERRORS: list = []
#: calls of ``fun`` by the XLA loop's callbacks during the current solve (its reported ``nfev``)
_XLA_CALLS: list = [0]


class PythonField:
    """``fun(t, y, *args)`` evaluated with NumPy: a length-``n`` array in ``dtype`` per call, checked,
    and counted (``nfev``, ``njev``); the first exception it raises is kept in ``error`` by the
    ``*_into`` forms that compiled code calls, and re-raised by `raise_error`.

    ``vectorized``: ``fun`` takes ``y`` of shape ``(n, k)`` (scipy's convention); single evaluations
    pass ``(n, 1)``, and a finite-difference Jacobian is one call. ``jac``: the user's ``jac(t, y, args)``
    (then df/dy is not differenced); ``sparsity``: a `sciml.solvers._sparsity.JacobianSparsity`, whose
    column groups make a differenced Jacobian cost one call per group.
    """

    def __init__(self, fun, args: tuple, n: int, dtype, vectorized: bool = False, t_span=(-np.inf, np.inf),
                 jac=None, sparsity=None):
        self.fun, self.args, self.n, self.dtype, self.vectorized = fun, args, n, np.dtype(dtype), vectorized
        self.jac, self.sparsity = jac, sparsity
        self.t_lo, self.t_hi = min(t_span), max(t_span)
        self.nfev = self.njev = 0
        self.error: BaseException | None = None
        self._shape, self._real = (n,), self.dtype.kind != "c"

    def __call__(self, t, y) -> np.ndarray:
        self.nfev += 1
        if self.vectorized:
            return self._checked(self.fun(t, y[:, None], *self.args), (self.n, 1)).reshape(self.n)
        return self._checked(self.fun(t, y, *self.args), self._shape)

    def _checked(self, out, shape) -> np.ndarray:
        out = np.asarray(out)
        if out.shape != shape:
            raise ValueError(f"`fun(t, y, *args)` must return dy/dt of shape {shape} (the shape of `y`); got "
                             f"shape {out.shape}.")
        if self._real and out.dtype.kind == "c":
            raise TypeError(f"`fun(t, y, *args)` returned a complex dy/dt for a real `y0`; its imaginary part "
                            f"would be dropped. Pass a complex `y0` (e.g. `y0.astype(complex)`).")
        return out

    def jacobian(self, t, y, f0) -> tuple[np.ndarray, np.ndarray]:
        """``(df/dy, df/dt)`` at ``(t, y)``: the user's ``jac``, else forward differences from
        ``f0 = f(t, y)`` (steps of ``sqrt(eps) max(1, |y_k|)``, made exact in floating point; a group of
        columns at once with ``sparsity``). ``t`` steps towards the span's inside, so ``fun`` is never
        called outside it."""
        self.njev += 1
        eps = np.finfo(self.dtype).eps
        if self.jac is not None:
            J = np.asarray(self.jac(t, y, self.args))
        else:
            h = np.sqrt(eps) * np.maximum(1.0, np.abs(y))
            h = ((y + h) - y).real.astype(self.dtype)
            J = self._differenced(t, y, f0, h)
        ht = float(np.sqrt(eps) * max(1.0, abs(t)))
        ht = ht if t + ht <= self.t_hi else -ht
        ht = (t + ht) - t
        return J, (self(t + ht, y) - f0) / ht

    def _differenced(self, t, y, f0, h) -> np.ndarray:
        s = self.sparsity
        if s is not None:
            seeds = np.zeros((s.n_colors, self.n), h.dtype)
            seeds[s.colors, np.arange(self.n)] = h
            if self.vectorized:
                self.nfev += 1
                F = self._checked(self.fun(t, y[:, None] + seeds.T, *self.args), (self.n, s.n_colors)).T
            else:
                F = np.stack([self(t, y + seed) for seed in seeds])
            J = np.zeros((self.n, self.n), np.result_type(self.dtype, F))
            J[s.rows, s.cols] = (F[s.colors[s.cols], s.rows] - f0[s.rows]) / h[s.cols]
            return J
        if self.vectorized:
            self.nfev += 1
            F = self._checked(self.fun(t, y[:, None] + np.diag(h), *self.args), (self.n, self.n))
            return (F - f0[:, None]) / h
        JT = np.empty((self.n, self.n), np.result_type(self.dtype, f0))   # row k: column k of J
        for k in range(self.n):
            yk = y.copy()
            yk[k] = y[k] + h[k]
            JT[k] = self(t, yk) - f0
        return JT.T / h

    def jacobian_at(self, t, y) -> tuple[np.ndarray, np.ndarray]:
        """`jacobian` at ``(t, y)`` (one more call for ``f(t, y)``)."""
        return self.jacobian(t, y, self(t, y))

    def evaluate_into(self, t: float, y: np.ndarray, dy: np.ndarray) -> int:
        """``dy[:] = f(t, y)``; 0, or 1 with the exception kept (for a C caller, which cannot take one)."""
        try:
            if self.vectorized:
                dy[:] = self(t, y.copy())
            else:   # __call__ inlined: this runs once per evaluation, from C
                self.nfev += 1
                dy[:] = self._checked(self.fun(t, y.copy(), *self.args), self._shape)
            return 0
        except BaseException as err:  # noqa: BLE001 - re-raised by raise_error once the kernel returns
            self.error = err
            return 1

    def jacobian_into(self, t: float, y: np.ndarray, f0: np.ndarray, J: np.ndarray, dfdt: np.ndarray) -> int:
        """``J[:], dfdt[:] = jacobian(t, y, f0)``; 0, or 1 with the exception kept."""
        try:
            J[:], dfdt[:] = self.jacobian(t, y.copy(), f0.copy())
            return 0
        except BaseException as err:  # noqa: BLE001
            self.error = err
            return 1

    def raise_error(self) -> None:
        if self.error is not None:
            err, self.error = self.error, None
            raise err


def known_python_field(f) -> bool:
    """Whether the pipeline field ``f`` (one object per user ``fun``) already failed to trace: its later
    calls go straight to `solve_with_callback`, without tracing it again."""
    try:
        return f in _TRACE_ERRORS
    except TypeError:  # an unhashable callable
        return False


def solve_with_callback(call, fun, vectorized: bool, error: Exception | None, solve_traced):
    """`sciml.solve_ivp`'s result for a ``fun`` that JAX cannot trace (``error``: what tracing raised,
    None when `known_python_field`). ``call`` is the checked call (its ``problem``, ``options``, ``mode``,
    times and ``y0``); ``solve_traced(call)`` is the traced path's solve, run here with the field called
    back from the XLA loop where the kernel does not serve the call. ``backend="jax"`` raises a TypeError
    naming the fix; an exception raised by ``fun`` reaches the caller with its own traceback."""
    from sciml._ode_result import OdeSolution, result

    options, problem = call.options, call.problem
    if error is not None:
        _remember(options.f, error)
    error = error or _TRACE_ERRORS.get(options.f)
    if options.backend == "jax":
        raise TypeError(f"`backend=\"jax\"` needs a `fun` that JAX can trace (written with `jax.numpy`, no Python "
                        f"`if` on `t` or `y`); tracing it raised {type(error).__name__}: {error}. Use "
                        f"`backend=\"auto\"` (the default) to run it as a Python callback.") from error
    args = tuple(options.static_args.rebuild(list(problem.args)))
    y0 = np.asarray(call.y0)
    key = (options.f, y0.dtype.str, y0.shape, tuple(np.result_type(a).str for a in problem.args))
    dtype = _cached(_DTYPES, key, lambda: _state_dtype(fun, y0, args, float(problem.t0), vectorized))
    field = PythonField(fun, args, y0.size, dtype, vectorized, (float(problem.t0), float(problem.t1)),
                        jac=options.jac, sparsity=options.jac_sparsity)
    problem = dataclasses.replace(problem, y0=np.asarray(y0, dtype))
    events = options.events and HostEvents(options.events, args, options.event_records, y0.size, dtype)
    out = solve_python_field(field, problem, options, call.t_eval, events or None)
    if out is not None:
        res = result(out, None, call.mode, call.t0, call.t1, call.t_eval, call.n_events, options.max_steps,
                     call.max_events)
        if options.mode == "dense":
            evaluate = functools.partial(_piecewise, out["ts"], out["step_ys"], out["steps"], out["dense"])
            res["sol"] = OdeSolution(evaluate, out["ts"], y0.size)
        return res
    # the user's jac / jac_sparsity act inside the called-back field's derivative (a NumPy jac cannot be traced)
    options = dataclasses.replace(options, backend="jax", jac=None, jac_sparsity=None,
                                  f=_callback_field(fun, vectorized, dtype.str, options.jac, options.jac_sparsity),
                                  events=options.events and tuple(
                                      dataclasses.replace(e, cond=_callback_event(e.cond)) for e in options.events))
    _XLA_ERRORS.clear()
    _XLA_CALLS[0] = 0
    try:
        res = solve_traced(dataclasses.replace(call, problem=problem, options=options))
    finally:
        failed, _XLA_ERRORS[:] = list(_XLA_ERRORS), []
    if failed:
        raise failed[0]
    # every call of `fun`, the finite-difference Jacobians' included, as the kernel path counts them (the
    # solvers' own nfev leaves out the calls of a Jacobian, which for a traced field cost none)
    res["nfev"] = _XLA_CALLS[0]
    return res


def _piecewise(ts: np.ndarray, ys: np.ndarray, ends: np.ndarray, dc: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The kernel's dense output at times ``t``: ``(len(t), n)`` from the step times ``ts`` and each step's
    polynomial ``dc[k, p]`` in ``theta = (t - ts[k]) / (ends[k] - ts[k])`` (``ends``: where each step
    ended, past ``ts[-1]`` for a step cut short by a terminal event); exactly the recorded state ``ys``
    at the step times."""
    t = np.asarray(t, np.float64).ravel()
    if len(ts) < 2:
        return np.broadcast_to(dc[0, 0] if len(dc) else np.zeros(dc.shape[-1]), (len(t), dc.shape[-1]))
    forward = ts[-1] >= ts[0]
    k = np.searchsorted(ts if forward else -ts, t if forward else -t, side="right") - 1
    k = np.clip(k, 0, len(ts) - 2)
    theta = ((t - ts[k]) / (ends[k] - ts[k]))[:, None]
    value = dc[k, -1]
    for p in range(dc.shape[1] - 2, -1, -1):
        value = value * theta + dc[k, p]
    at_end = t == ts[k + 1]
    value[at_end] = ys[k + 1][at_end]
    return value


def _remember(f, error) -> None:
    _cached(_TRACE_ERRORS, f, lambda: error)


def _cached(cache: dict, key, make):
    """``cache[key]``, made by ``make()`` if missing (the oldest of 256 entries dropped); an unhashable
    key (a field object that cannot be hashed) is made again on every call."""
    try:
        return cache[key]
    except KeyError:
        pass
    except TypeError:
        return make()
    if len(cache) >= 256:
        cache.pop(next(iter(cache)))
    value = cache[key] = make()
    return value


def _state_dtype(fun, y0, args, t0, vectorized) -> np.dtype:
    """``result_type(y0, fun(t0, y0))``, as the traced path integrates in (one call, not counted; made once
    per field, dtypes and shape)."""
    probe = PythonField(fun, args, y0.size, y0.dtype, vectorized)
    dtype = np.result_type(y0.dtype, probe(t0, y0.copy()).dtype)
    if not np.issubdtype(dtype, np.inexact):
        dtype = np.dtype(np.float64)
    return np.dtype(dtype)


@functools.lru_cache(maxsize=128)
def _callback_field(fun, vectorized: bool, dtype: str, jac=None, sparsity=None):
    """The pipeline's ``f(t, y, args)`` calling ``fun`` back from XLA, one object per ``(fun, vectorized,
    dtype, jac, sparsity)`` (so compiled programs are found again); dy/dt in ``result_type(y, dtype)``,
    ``dtype`` being what ``fun`` returns. Its derivative in ``y`` and ``t`` is `PythonField.jacobian`
    (the user's ``jac``, else finite differences), which the stiff methods use."""

    def f(t, y, args):
        arrays, rebuild = _split(args)
        out_dtype = jnp.result_type(y.dtype, np.dtype(dtype))

        def host(dynamic) -> PythonField:
            return PythonField(fun, tuple(rebuild(dynamic)), y.size, out_dtype, vectorized, jac=jac, sparsity=sparsity)

        def evaluate(name, t, y, *dynamic):
            field = host(dynamic)
            try:
                return getattr(field, name)(t.item(), np.array(y))
            finally:
                _XLA_CALLS[0] += field.nfev

        def call(name, shapes, t, y, dynamic):
            run = _guarded(functools.partial(evaluate, name), shapes)
            return host_call(run, shapes, t, y, *dynamic, vmap_method="sequential")

        vector = jax.ShapeDtypeStruct(y.shape, out_dtype)

        @jax.custom_jvp
        def g(t, y, dynamic):
            return call("__call__", vector, t, y, dynamic)

        def rule(primals, tangents):
            t, y, dynamic = primals
            dt, dy, ddynamic = tangents
            if not all(_is_zero(d) for d in ddynamic):
                raise TypeError("a Python `fun` (run as a callback) cannot be differentiated with respect to `args`.")
            out = g(t, y, dynamic)
            J, dfdt = call("jacobian_at", (jax.ShapeDtypeStruct((y.size, y.size), out_dtype), vector), t, y, dynamic)
            tangent = jnp.zeros_like(out)
            if not _is_zero(dy):
                tangent = tangent + J @ dy.astype(out_dtype)
            if not _is_zero(dt):
                tangent = tangent + dfdt * dt.astype(out_dtype)
            return out, tangent

        g.defjvp(rule, symbolic_zeros=True)
        return g(t, y, arrays)

    return f


@functools.lru_cache(maxsize=128)
def _callback_event(cond):
    """An event's ``cond(t, y, args)`` called back from XLA (a real scalar in the state's real dtype)."""

    def c(t, y, args):
        arrays, rebuild = _split(args)
        real = jnp.zeros((), y.dtype).real.dtype

        shape = jax.ShapeDtypeStruct((), real)
        run = _guarded(lambda t, y, *d: cond(t.item(), np.array(y), rebuild(d)), shape)
        return host_call(run, shape, t, y, *arrays, vmap_method="sequential")

    return c


def _guarded(fn, shapes):
    """``fn`` for `host_call`: its outputs as ``shapes`` says; once a call has raised, NaNs (which
    stop the loop) and no more calls, the exception kept in `_XLA_ERRORS` for the solve to re-raise."""
    many = isinstance(shapes, tuple)

    def run(*inputs):
        if not _XLA_ERRORS:
            try:
                out = fn(*inputs)
                if many:
                    return tuple(np.asarray(o, s.dtype) for o, s in zip(out, shapes))
                return np.asarray(out, shapes.dtype)
            except Exception as err:  # noqa: BLE001
                _XLA_ERRORS.append(err)
        nan = lambda s: np.full(s.shape, np.nan, s.dtype)  # noqa: E731
        return tuple(nan(s) for s in shapes) if many else nan(shapes)

    return run


def _split(args):
    """``(traced leaves of args, rebuild)``: ``rebuild(values)`` is ``args`` with those leaves replaced."""
    leaves, treedef = jax.tree_util.tree_flatten(args)
    traced = [isinstance(x, jax.Array) for x in leaves]

    def rebuild(values):
        it = iter(values)
        return jax.tree_util.tree_unflatten(treedef, [next(it) if d else x for x, d in zip(leaves, traced)])

    return [x for x, d in zip(leaves, traced) if d], rebuild


def _is_zero(t) -> bool:
    return isinstance(t, jax.custom_derivatives.SymbolicZero)
