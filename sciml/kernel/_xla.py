"""`sciml.solve`'s forward solve through the generated C kernel (``backend="c"``, or ``"auto"`` where it
serves), called from inside the jitted program as an XLA custom call.

Only the primal runs in C. Derivatives are unchanged: a reverse-mode adjoint (Direct, Backsolve, ...)
computes its forward pass and gradient with the XLA loop as before (a `jax.custom_vjp` around the
kernel delegates to it), and `Forward` keeps its tangents (a `jax.custom_jvp` delegates likewise). So a
value-only call costs the kernel's solve, and a differentiated one what it cost before.
"""

from __future__ import annotations

import functools
import logging
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sciml.adjoints._base import hoist_closure

_log = logging.getLogger("sciml.kernel")

#: what `_build_solution` reads of a loop result, for the modes the kernel serves ("final", "ts")
class KernelResult(NamedTuple):
    t: jax.Array
    y: jax.Array
    ys: jax.Array
    status: jax.Array
    stats: dict
    n_accept: jax.Array
    dt: jax.Array

    @property
    def events(self):  # the kernel serves solves without events
        return None


def unserved(options) -> str:
    """Why the kernel cannot run a solve with these options (empty when it can)."""
    if options.mode not in ("final", "ts"):
        return f'it saves the final state or `saveat` times, not saveat="{options.mode}"'
    if options.events:
        return "it has no `events`"
    if options.jac is not None:
        return "it forms its own Jacobian (no `jac=`)"
    if options.mass_matrix is not None and not getattr(options.solver, "takes_mass_matrix", False):
        return f"it takes a mass matrix with Rodas5P, not with {options.solver!r}"
    return solver_unserved(options.solver) or controller_unserved(options.controller)


def controller_unserved(controller) -> str:
    """Why the kernel cannot run ``controller`` (empty when it can): it runs sciml's own controllers,
    not a user-defined one."""
    from sciml.kernel._kernel_control import kernel_controller

    try:
        kernel_controller(controller)
    except ValueError:
        return f"it runs `PIController`, `IController` and `PIDController`, not {controller!r}"
    return ""


def not_served(reason: str, what: str, backend: str = "c", has_auto: bool = True) -> ValueError:
    """The error a kernel ``backend`` raises for a ``what`` ("solve", "call", "ensemble") it does not
    serve; ``has_auto``: whether the front door has ``backend="auto"`` to name in the fix."""
    fix = 'Use backend="jax" (or "auto", which picks it).' if has_auto else 'Use backend="jax".'
    return ValueError(f"`backend=\"{backend}\"` does not serve this {what}: {reason}. {fix}")


def gave_up(backend: str) -> bool:
    """Whether "auto" stopped trying the kernel in this process (after a missing compiler, unusable FFI
    headers or a refused cache; see `fall_back`)."""
    return backend == "auto" and bool(_UNAVAILABLE)


def fall_back(err: Exception, backend: str) -> bool:
    """The one fallback rule: whether a failure ``err`` to translate, build or load the kernel is met by
    running the XLA loop instead (``backend="auto"``) or raised (``"c"``). A missing compiler, unusable
    FFI headers or a refused cache would fail again on every later solve, so after one of those "auto"
    stops trying the kernel in this process."""
    from sciml.kernel._ctypes import UnsupportedDtypeError
    from sciml.kernel._errors import BackendUnavailableError, CompileError
    from sciml.kernel._translate import UnsupportedPrimitiveError

    if backend == "c":
        return False
    if isinstance(err, (BackendUnavailableError, CompileError, AttributeError)):
        _UNAVAILABLE.append(repr(err))
    elif not isinstance(err, (UnsupportedPrimitiveError, UnsupportedDtypeError, TypeError, ValueError)):
        return False
    _log.debug("backend=\"auto\" runs the XLA loop: the kernel failed with %r", err)
    return True


def solver_unserved(solver) -> str:
    """Why the kernel cannot run ``solver`` (empty when it can); `sciml.solve_ivp` asks on every call,
    so the answer is kept per solver."""
    try:
        return _solver_unserved(solver)
    except TypeError:  # an unhashable solver object
        return _solver_unserved.__wrapped__(solver)


@functools.lru_cache(maxsize=64)
def _solver_unserved(solver) -> str:
    from sciml.kernel._launch import SERVED_METHODS, kernel_method, option_kernel

    try:
        option_kernel(solver)
    except ValueError as err:   # an option the kernel does not run (a mass matrix, gmres, AutoSwitch's pair)
        return str(err)
    try:
        kernel_method(solver)
    except ValueError:
        return f"it runs {SERVED_METHODS}, not {solver!r}"
    return ""


def state_unserved(dtype) -> str:
    """Why the kernel cannot integrate a state of ``dtype`` (empty when it can)."""
    if dtype not in (np.float32, np.float64):
        return f"it integrates float32/float64 states, not {dtype}"
    return ""


def integrate_or_none(options, p, adjoint):
    """The loop result of ``p`` (a `sciml._integrate.LoopProblem`) from the kernel, with ``adjoint``'s
    derivatives; ``None`` when ``options.backend`` is ``"auto"`` and the kernel does not serve the solve
    (``"c"`` raises the reason instead)."""
    if options.backend == "jax" or gave_up(options.backend):
        return None
    reason = unserved(options) or _unserved_state(p)
    built = None if reason else _build(options, p)
    if isinstance(built, str):
        reason, built = built, None
    solve = None
    if built is not None:
        # Only a solve the kernel runs pays for converting the field's closure into explicit inputs.
        cfg, g, params = hoist_closure(p.cfg, p.f, p.s0, p.y0, p.args)

        def reference(*inputs):
            res = adjoint.integrate(cfg, g, *inputs[:-1])
            return KernelResult(res.t, res.y, res.ys, res.status, res.stats, res.n_accept, res.dt)

        solve = adjoint.wrap_primal(functools.partial(_kernel_solve, built, cfg), reference)
        if solve is None:
            reason = (f"`adjoint={adjoint!r}` splits the forward solve into checkpointed intervals, which the "
                      f"kernel's single solve would not")
    if solve is None:
        if options.backend == "c" and reason:
            raise not_served(reason, "solve")
        _log.debug("backend=\"auto\" runs the XLA loop: %s", reason)
        return None
    return solve(p.y0, p.s0, p.s1, params, p.s_ts, p.rtol, p.atol, p.dt0, p.direction)


def _build(options, p):
    """``(target, spec, method)`` of the kernel for ``p``, or the reason it cannot be built (for
    ``"auto"``; ``"c"`` raises what the translator or the compiler raised)."""
    from sciml.kernel._ffi import target_for

    try:
        # Translating and building run on concrete values, outside the program being traced.
        with jax.ensure_compile_time_eval():
            spec, method = _spec(options, p)
            if options.backend == "auto" and _matrix_work(spec.rhs.jaxpr) > AUTO_MATRIX_WORK:
                return "its field is mostly matrix products, which XLA does better"
            return target_for(spec, method), spec, method
    except Exception as err:  # an operation the translator does not take, no compiler, a closed-over tracer
        if options.backend == "c":
            raise
        fall_back(err, options.backend)
        return f"the kernel could not be built ({type(err).__name__}: {err})"


def _kernel_solve(built, cfg, y0, s0, s1, params, s_ts, rtol, atol, dt0, direction):
    """The forward solve in the kernel, with the XLA loop's dtypes and shapes."""
    from sciml.kernel._kernel_spec import stat_names
    from sciml.kernel._ffi import kernel_call

    target, spec, method = built
    time, dtmax = spec.time_dtype, cfg.controller.dtmax
    tp = jnp.stack([jnp.asarray(s0, time), jnp.asarray(s1, time), jnp.asarray(direction, time),
                    jnp.zeros((), time) if dt0 is None else jnp.asarray(dt0, time),
                    jnp.asarray(np.inf if dtmax is None else dtmax, time)])
    n = y0.shape[0]
    tol = jnp.concatenate([jnp.broadcast_to(rtol, (n,)), jnp.broadcast_to(atol, (n,))])
    ys, y_final, tout, iout = kernel_call(target, spec, method, y0, jax.tree_util.tree_leaves(params[0]), tp,
                                          s_ts, tol, cfg.max_steps)
    stats = {name: iout[k] for k, name in enumerate(stat_names(method)) if k}
    return KernelResult(t=tout[0], y=y_final, ys=jnp.zeros((0, n), y0.dtype) if ys is None else ys,
                        status=iout[0], stats=stats, n_accept=stats["naccept"], dt=tout[1])


#: "auto" leaves fields with more multiply-adds in matrix products than this to XLA: the translator
#: writes a product out element by element (a 64x64 layer is 4096 lines of C, slow to build), and
#: XLA's own matrix kernels are the better tool there
AUTO_MATRIX_WORK = 1024


def _matrix_work(jaxpr) -> int:
    """Multiply-adds of the ``dot_general``s in ``jaxpr`` (and the jaxprs inside it)."""
    from jax.extend.core import jaxprs_in_params

    total = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            (contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += int(np.prod(eqn.outvars[0].aval.shape)) * int(np.prod([lhs[d] for d in contract]))
        for sub in jaxprs_in_params(eqn.params):
            total += _matrix_work(sub)
    return total


#: why "auto" stopped trying the kernel in this process (empty while it is usable)
_UNAVAILABLE: list[str] = []


def _unserved_state(p) -> str:
    if not p.y0.shape[0]:
        return "it needs a state with at least one component"
    if state_unserved(p.y0.dtype):
        return state_unserved(p.y0.dtype)
    if np.dtype(p.time_dtype) not in (np.float32, np.float64):
        return f"its times are float32/float64, not {p.time_dtype}"
    return ""


def _spec(options, p):
    """The kernel spec of ``p``'s flat vector field in the user's own time (the kernel handles the
    direction of integration itself: a traced direction closed over by the loop's forward-time field
    could not become C), translated from its jaxpr."""
    from sciml._flat import flatten
    from sciml.kernel._launch import _aval, _Static, _spec_uncached, kernel_static_controller

    leaves, treedef = jax.tree_util.tree_flatten(p.args)
    kernel_static = _Static(
        f=lambda t, y, a: flatten(p.f_user(t, p.unflatten(y), a))[0], y_treedef=jax.tree_util.tree_structure(0),
        y_avals=((tuple(p.y0.shape), np.dtype(p.y0.dtype)),), args_treedef=treedef,
        arg_avals=tuple(_aval(x, False) for x in leaves), solver=options.solver,
        state_dtype=np.dtype(p.y0.dtype), time_dtype=np.dtype(p.time_dtype), save=p.s_ts.shape[0] > 0,
        adaptive=options.adaptive, auto_dt0=options.auto_dt0,
        controller=kernel_static_controller(options.controller))
    return _spec_uncached(kernel_static)
