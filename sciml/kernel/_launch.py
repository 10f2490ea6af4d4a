"""The kernel backends' common front: trace ``f`` for one trajectory, generate the source, lay out the
arrays the entry point takes, and turn its outputs into the fields of an ensemble's solution.

Array work is written against a NumPy-like module ``xp`` (NumPy for ``backend="c"``, CuPy for
``backend="cupy"``), so data stays on the device that runs the kernel.
"""

from __future__ import annotations

import dataclasses
import functools
import weakref
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from sciml._flat import flatten
from sciml._problem import Options, Problem
from sciml._validate import check_f_output, probe_f, tolerance_vector
from sciml._validate import time_dtype as time_dtype_of
from sciml.kernel._codegen import kernel_source
from sciml.kernel._kernel_spec import ArgSpec, KernelMethod, KernelSpec, entry_parameters, stat_names
from sciml.kernel._ctypes import UnsupportedDtypeError
from sciml.kernel._kernel_control import kernel_controller
from sciml.kernel._kernel_init import apply_init, initialise
from sciml.kernel._kernel_rk import ExplicitRKKernel
from sciml.kernel._kernel_autoswitch import autoswitch_kernel
from sciml.kernel._kernel_bdf import bdf_kernel
from sciml.kernel._kernel_radau import radau_kernel
from sciml.kernel._kernel_rosenbrock import rosenbrock_kernel
from sciml.solvers._explicit_rk import ExplicitRK


#: the methods the kernel backends run, as their refusals name them
SERVED_METHODS = "the explicit Runge-Kutta methods, Rodas5P, ROS34PW2, BDF, RadauIIA5 and AutoSwitch"


def option_kernel(solver) -> KernelMethod | None:
    """The kernel of a BDF, RadauIIA5 or AutoSwitch ``solver``, None for another solver. Raises ValueError
    naming an option of it that the kernel does not run (a mass matrix, gmres, another AutoSwitch pair)."""
    return bdf_kernel(solver) or radau_kernel(solver) or autoswitch_kernel(solver)


def kernel_method(solver) -> KernelMethod:
    """The kernel counterpart of ``solver``; a clear error for methods without one."""
    if isinstance(solver, ExplicitRK):
        return ExplicitRKKernel(solver)
    method = rosenbrock_kernel(solver)
    if method is None:
        try:
            method = option_kernel(solver)
        except ValueError as err:   # an option the kernel does not run: say which
            raise ValueError(f"{err}; got `solver={solver!r}`. Use `backend=\"jax\"` for it.") from None
    if method is None:
        raise ValueError(f"the kernel backends (`backend=\"c\"`, `\"cupy\"`) run {SERVED_METHODS}; got "
                         f"`solver={solver!r}`. Use `backend=\"jax\"` for it.")
    return method


@dataclasses.dataclass(frozen=True)
class _Static:
    """Everything the generated source depends on (hashable: the kernel cache key)."""

    f: Callable
    y_treedef: Any
    y_avals: tuple            # (shape, dtype) of each leaf of one trajectory's state
    args_treedef: Any
    arg_avals: tuple          # per leaf: (shape, dtype, weak, batched) or ("static", object)
    solver: Any
    state_dtype: np.dtype
    time_dtype: np.dtype
    save: bool
    adaptive: bool
    auto_dt0: bool
    controller: Any           # with ``dtmax=None`` (see `kernel_static_controller`)


def kernel_static_controller(controller):
    """``controller`` as the kernel's source depends on it: the largest step (``dtmax``) is an input of
    the kernel, so solves differing only in ``max_step`` share one build. Raises for a controller the
    kernel does not run."""
    kernel_controller(controller)
    return dataclasses.replace(controller, dtmax=None)


def _aval(x, batched: bool):
    if isinstance(x, (bool, int, float)):  # weakly typed, as in jnp.asarray
        return ((), _python_dtype(type(x), jax.config.jax_enable_x64), True, batched)
    shape = tuple(x.shape) if hasattr(x, "shape") else tuple(np.shape(x))
    weak = bool(getattr(x, "weak_type", False))
    return (shape[1:] if batched else shape, np.dtype(x.dtype), weak, batched)


@functools.lru_cache(maxsize=None)
def _python_dtype(kind: type, x64: bool) -> np.dtype:
    """The dtype JAX gives a Python number of this type (asked once: `jnp.result_type` costs ~10 us,
    more than a small kernel solve)."""
    return np.dtype(jnp.result_type(kind(0)))


def _structs(static: _Static):
    y = [jax.ShapeDtypeStruct(s, d) for s, d in static.y_avals]
    args = [a[1] if a[0] == "static" else jax.ShapeDtypeStruct(a[0], a[1], weak_type=a[2])
            for a in static.arg_avals]
    return jax.tree_util.tree_unflatten(static.y_treedef, y), args


def _rebuild(args_treedef, arg_avals, dynamic):
    """``args`` from its array leaves ``dynamic``, the static leaves taken from ``arg_avals``."""
    it = iter(dynamic)
    leaves = [a[1] if a[0] == "static" else next(it) for a in arg_avals]
    return jax.tree_util.tree_unflatten(args_treedef, leaves)


def _dynamic_structs(arg_avals) -> list:
    """Shape-dtype structs of the array leaves of ``args``, in order."""
    return [jax.ShapeDtypeStruct(a[0], a[1], weak_type=a[2]) for a in arg_avals if a[0] != "static"]


def _spec(static: _Static) -> tuple[KernelSpec, KernelMethod]:
    try:
        return _spec_cached(static)
    except TypeError:  # an unhashable f or static arg: generate for this call only
        return _spec_uncached(static)


@functools.lru_cache(maxsize=128)
def _spec_cached(static: _Static):
    return _spec_uncached(static)


def _spec_uncached(static: _Static) -> tuple[KernelSpec, KernelMethod]:
    method = kernel_method(static.solver)
    y_struct, _ = _structs(static)
    template = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, static.state_dtype), y_struct)
    y_flat, unflatten = flatten(template)
    dynamic = _dynamic_structs(static.arg_avals)

    def rhs(t, y, *arg_leaves):  # the field sees t in the state's dtype, as in the XLA loop
        out = static.f(t.astype(static.state_dtype), unflatten(y), _rebuild(static.args_treedef, static.arg_avals, arg_leaves))
        return flatten(out)[0].astype(static.state_dtype)

    t_struct = jax.ShapeDtypeStruct((), static.time_dtype)
    closed = jax.make_jaxpr(rhs)(t_struct, jax.ShapeDtypeStruct(y_flat.shape, static.state_dtype), *dynamic)
    jac = method.jacobian_jaxpr(rhs, t_struct, y_flat, dynamic) if hasattr(method, "jacobian_jaxpr") else None
    args = tuple(ArgSpec(a[1] if a[1] != np.bool_ else np.dtype(np.int32), int(np.prod(a[0], dtype=np.int64)), a[3])
                 for a in static.arg_avals if a[0] != "static")
    spec = KernelSpec(rhs=closed, n=int(y_flat.shape[0]), state_dtype=static.state_dtype,
                      time_dtype=static.time_dtype, args=args, save=static.save, adaptive=static.adaptive,
                      auto_dt0=static.auto_dt0, controller=static.controller, jac=jac)
    return spec, method


#: generated sources per live spec and target (a spec from the cache above is generated once)
_SOURCES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def source_for(spec: KernelSpec, method: KernelMethod, target: str) -> str:
    """The generated source of ``spec`` for ``target``, built once per spec."""
    sources = _SOURCES.setdefault(spec, {})
    if target not in sources:
        sources[target] = kernel_source(spec, method, target)
    return sources[target]


@dataclasses.dataclass
class Launch:
    """The arrays of one kernel run, in entry-point order (see `_kernel_spec.entry_parameters`)."""

    spec: KernelSpec
    method: KernelMethod
    n_traj: int
    y0s: Any
    args: list
    tp: Any
    ts: Any
    m: int
    tol: Any
    max_steps: int
    ys: Any
    yf: Any
    tout: Any
    iout: Any

    def values(self) -> list:
        """The entry point's arguments, in order (ints for ``long long`` parameters, arrays otherwise)."""
        named = {"n_traj": self.n_traj, "y0s": self.y0s, "tp": self.tp, "ts": self.ts, "m": self.m,
                 "tol": self.tol, "max_steps": self.max_steps, "ys": self.ys, "yf": self.yf,
                 "tout": self.tout, "iout": self.iout}
        named.update({f"arg{k}": a for k, a in enumerate(self.args)})
        return [named[name] for _, name in entry_parameters(self.spec)]


def prepare_launch(problem: Problem, options: Options, xp, to_xp: Callable) -> tuple[Launch, Callable]:
    """Arrays for the kernel on ``xp`` and a function turning the finished launch into a solution, for
    an ensemble ``problem`` (a leading trajectory axis; ``options.batched`` marks the batched args)."""
    traced = [x for x in jax.tree_util.tree_leaves((problem.y0, problem.args, problem.t0, problem.t1,
                                                     problem.ts, problem.rtol, problem.atol, problem.dt0))
              if isinstance(x, jax.core.Tracer)]
    if traced:
        raise TypeError(
            "the kernel backends (`backend=\"c\"`, `\"cupy\"`) run compiled code outside JAX's tracing, so "
            "they cannot be used inside `jax.jit`, `jax.grad` or `jax.vmap`, and give no gradients. Use "
            "`backend=\"jax\"` there (it is differentiable), or call the kernel backend outside the transform.")
    y_leaves, y_treedef = jax.tree_util.tree_flatten(problem.y0)
    y_avals = tuple((tuple(x.shape[1:]), np.dtype(x.dtype)) for x in y_leaves)
    static_args, batched = options.static_args, iter(options.batched)
    dynamic, fixed = iter(problem.args), iter(static_args.leaves)
    arg_avals = tuple(_aval(next(dynamic), next(batched)) if d else ("static", next(fixed))
                      for d in static_args.is_dynamic)
    state_dtype = _state_dtype(options.f, problem.t0, y_treedef, y_avals, static_args.treedef, arg_avals)
    real = np.dtype(state_dtype)
    time_dtype = np.dtype(time_dtype_of(problem.t0, problem.t1, problem.ts, real))
    static = _Static(f=options.f, y_treedef=y_treedef, y_avals=y_avals, args_treedef=static_args.treedef,
                     arg_avals=arg_avals, solver=options.solver, state_dtype=real, time_dtype=time_dtype,
                     save=problem.ts is not None, adaptive=options.adaptive, auto_dt0=options.auto_dt0,
                     controller=kernel_static_controller(options.controller))
    spec, method = _spec(static)
    n, N = spec.n, problem.n_traj

    args = arg_inputs(problem.args, [a for a in arg_avals if a[0] != "static"], N, xp, to_xp)
    ts_user = None if problem.ts is None else np.asarray(problem.ts)
    tp, ts, m, direction = time_inputs(problem.t0, problem.t1, problem.dt0, options.max_step, ts_user, time_dtype)
    tol = np.concatenate([host_tolerance(tol, name, y_treedef, y_avals, real, n)
                          for tol, name in ((problem.rtol, "rtol"), (problem.atol, "atol"))])
    init = initialise(static, _rebuild, problem, options, tp, tol, to_xp)   # a DAE's y0s, made consistent in JAX
    starts = y_leaves if init is None else [init.y0]
    y0s = xp.concatenate([xp.reshape(to_xp(x), (N, -1)).astype(real) for x in starts], axis=1)
    launch = Launch(spec=spec, method=method, n_traj=N, y0s=xp.ascontiguousarray(y0s), args=args,
                    tp=xp.asarray(tp), ts=xp.asarray(ts), m=m, tol=xp.asarray(tol), max_steps=options.max_steps,
                    **outputs(spec, method, N, m, xp))

    def finish(convert: Callable) -> dict:
        fields = _solution(launch, y_leaves, y_treedef, ts_user, direction, convert, xp)
        return apply_init(fields, init, options.init, launch.iout, xp, convert)

    return launch, finish


def arg_inputs(leaves, avals, n_traj: int, xp, to_xp: Callable) -> list:
    """The array arguments as the kernel reads them: batched ones ``(n_traj, size)``, shared ones flat."""
    args = []
    for x, a in zip(leaves, avals):
        arr = to_xp(x) if hasattr(x, "shape") else xp.asarray(np.asarray(x, dtype=a[1]))
        dtype = np.int32 if a[1] == np.bool_ else a[1]
        args.append(xp.ascontiguousarray(xp.reshape(arr.astype(dtype), (n_traj, -1) if a[3] else (-1,))))
    return args


def time_inputs(t0, t1, dt0, max_step, ts_user, time_dtype):
    """``(tp, ts, m, direction)``: the kernel's time parameters (t0 and t1 along the direction of
    integration, the direction, the first step or 0 for automatic, the largest step) and save times."""
    t0, t1 = float(t0), float(t1)
    direction = 1.0 if t1 >= t0 else -1.0
    dt0 = 0.0 if dt0 is None else abs(float(dt0))
    dtmax = np.inf if max_step is None else float(max_step)
    tp = np.array([t0 * direction, t1 * direction, direction, dt0, dtmax], dtype=time_dtype)
    ts = np.zeros(1, time_dtype) if ts_user is None else ts_user.astype(time_dtype) * time_dtype.type(direction)
    m = 0 if ts_user is None else int(ts_user.shape[0])
    return tp, ts, m, direction


def outputs(spec: KernelSpec, method: KernelMethod, n_traj: int, m: int, xp) -> dict:
    """Fresh output arrays of a launch (``ys``, ``yf``, ``tout``, ``iout``)."""
    real, n = spec.state_dtype, spec.n
    return dict(ys=xp.empty((n_traj, max(m, 1), n) if m else (1,), real), yf=xp.empty((n_traj, n), real),
                tout=xp.empty((n_traj, 2), spec.time_dtype),
                iout=xp.empty((n_traj, len(stat_names(method))), np.int32))


def host_tolerance(tol, name, y_treedef, y_avals, real, n) -> np.ndarray:
    """One trajectory's tolerance as a length-``n`` NumPy vector (a scalar without touching JAX)."""
    if isinstance(tol, (int, float, np.number)) or (isinstance(tol, np.ndarray) and tol.ndim == 0):
        return np.full(n, tol, real)
    template = {k: np.zeros(s, real) for k, (s, _) in enumerate(y_avals)}
    return np.broadcast_to(np.asarray(tolerance_vector(_per_leaf(tol, y_treedef), template, real, name)), (n,)).astype(real)


def _per_leaf(tol, y_treedef):
    """A tolerance pytree like ``y0`` re-keyed like the flat template `prepare_launch` builds."""
    if jax.tree_util.treedef_is_leaf(jax.tree_util.tree_structure(tol)) and np.ndim(tol) == 0:
        return tol
    if jax.tree_util.tree_structure(tol) != y_treedef:
        raise ValueError(f"`rtol`/`atol` must be a scalar or a pytree like one trajectory's `y0`; got the "
                         f"structure {jax.tree_util.tree_structure(tol)} for `y0` of structure {y_treedef}.")
    return {k: leaf for k, leaf in enumerate(jax.tree_util.tree_leaves(tol))}


def _state_dtype(f, t0, y_treedef, y_avals, args_treedef, arg_avals):
    """``result_type(y0, f(t0, y0, args))``, as `sciml.solve` integrates in; float32/float64 only.

    Tracing ``f`` costs milliseconds, so the answer is kept per (f, avals): a repeated call with new
    values (a pipeline's loop) does not trace again.
    """
    key = (f, y_treedef, y_avals, args_treedef, arg_avals)
    try:
        return _state_dtype_cached(*key)
    except TypeError:  # an unhashable f or static arg: check this call only
        return _state_dtype_uncached(*key)


@functools.lru_cache(maxsize=128)
def _state_dtype_cached(f, y_treedef, y_avals, args_treedef, arg_avals):
    return _state_dtype_uncached(f, y_treedef, y_avals, args_treedef, arg_avals)


def _state_dtype_uncached(f, y_treedef, y_avals, args_treedef, arg_avals):
    y_struct = jax.tree_util.tree_unflatten(y_treedef, [jax.ShapeDtypeStruct(s, d) for s, d in y_avals])
    dynamic = _dynamic_structs(arg_avals)
    # the field sees t in the state's real dtype (as in the XLA loop)
    t_struct = jax.ShapeDtypeStruct((), jnp.zeros((), jnp.result_type(*[d for _, d in y_avals])).real.dtype)

    def rebuild(dyn):
        return _rebuild(args_treedef, arg_avals, dyn)

    def probe(t, y, dyn):
        return f(t, y, rebuild(dyn))

    out = jax.eval_shape(lambda t, y, dyn: probe_f(probe, t, y, dyn), t_struct, y_struct, dynamic)
    y_dtype = jnp.result_type(*[d for _, d in y_avals])
    dtype = np.dtype(jnp.result_type(y_dtype, *[o.dtype for o in jax.tree_util.tree_leaves(out)]))
    if dtype not in (np.float32, np.float64):
        raise UnsupportedDtypeError(
            f"the kernel backends integrate float32 or float64 states; this problem's state is "
            f"{dtype.name}. Use `backend=\"jax\"` (it handles complex states too).")

    def check(t, y, dyn):
        y_state = jax.tree_util.tree_map(lambda x: x.astype(dtype), y)
        check_f_output(lambda t_, y_, a_: f(t_.astype(dtype), y_, rebuild(a_)), t, y_state, dyn, y, dtype)
        return 0

    jax.eval_shape(check, t_struct, y_struct, dynamic)
    return dtype


def _solution(launch: Launch, y_leaves, y_treedef, ts_user, direction, convert, xp) -> dict:
    """The fields of an `sciml.ensemble.EnsembleSolution` from a finished launch (``convert`` makes the
    arrays the caller's kind)."""
    N, m = launch.n_traj, launch.m
    t_final = launch.tout[:, 0] * launch.tout.dtype.type(direction)
    flat = launch.ys if m else launch.yf[:, None, :]
    sizes = [int(np.prod(x.shape[1:], dtype=np.int64)) for x in y_leaves]
    offsets = np.cumsum([0] + sizes)

    def split(arr, lead):
        parts = [xp.reshape(arr[..., offsets[k]:offsets[k + 1]], lead + tuple(x.shape[1:]))
                 for k, x in enumerate(y_leaves)]
        return jax.tree_util.tree_unflatten(y_treedef, [convert(p) for p in parts])

    ts = t_final[:, None] if ts_user is None else xp.broadcast_to(xp.asarray(ts_user.astype(launch.tout.dtype)), (N, m))
    stats = {name: convert(launch.iout[:, k]) for k, name in enumerate(stat_names(launch.method)) if k}
    return dict(
        ts=convert(ts), ys=split(flat, (N, max(m, 1))), t_final=convert(t_final), y_final=split(launch.yf, (N,)),
        status=convert(launch.iout[:, 0]), stats=stats, _last_dt=convert(launch.tout[:, 1]),
        _max_steps=launch.max_steps)
