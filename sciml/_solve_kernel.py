"""`sciml.solve`'s forward solve through the generated C kernel (``backend="c"``, or ``"auto"`` where it
serves), called from inside the jitted program as an XLA custom call.

Only the primal runs in C. Derivatives are unchanged: a reverse-mode adjoint (Direct, Backsolve, ...)
computes its forward pass and gradient with the XLA loop as before (a `jax.custom_vjp` around the
kernel delegates to it), and `Forward` keeps its tangents (a `jax.custom_jvp` delegates likewise). So a
value-only call costs the kernel's solve, and a differentiated one what it cost before.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

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


def unserved(static) -> str:
    """Why the kernel cannot run a solve with these static options (empty when it can)."""
    if static.mode not in ("final", "ts"):
        return f'it saves the final state or `saveat` times, not saveat="{static.mode}"'
    if static.events:
        return "it has no `events`"
    if static.jac is not None:
        return "it forms its own Jacobian (no `jac=`)"
    return solver_unserved(static.solver)


def solver_unserved(solver) -> str:
    """Why the kernel cannot run ``solver`` (empty when it can); `sciml.solve_ivp` asks on every call,
    so the answer is kept per solver."""
    try:
        return _solver_unserved(solver)
    except TypeError:  # an unhashable solver object
        return _solver_unserved.__wrapped__(solver)


@functools.lru_cache(maxsize=64)
def _solver_unserved(solver) -> str:
    from sciml.ensemble._kernel import kernel_method

    try:
        kernel_method(solver)
    except ValueError:
        return f"it runs the explicit Runge-Kutta methods and Rodas5P, not {solver!r}"
    return ""


def state_unserved(dtype) -> str:
    """Why the kernel cannot integrate a state of ``dtype`` (empty when it can)."""
    if dtype not in (np.float32, np.float64):
        return f"it integrates float32/float64 states, not {dtype}"
    return ""


def kernel_integrate(static, p):
    """The loop result of problem ``p`` (see `sciml._solve._prepare`) from the kernel, or ``None``
    when ``static.backend`` is ``"auto"`` and the kernel does not serve this solve."""
    from sciml.adjoints import Auto, Forward
    from sciml.adjoints._base import hoist_closure
    from sciml.ensemble._codegen import stat_names
    from sciml.ensemble._errors import BackendUnavailableError, CompileError

    if static.backend == "jax" or (static.backend == "auto" and _UNAVAILABLE):
        return None
    reason = unserved(static) or _unserved_state(p)
    if reason:
        if static.backend == "c":
            raise ValueError(f"`backend=\"c\"` does not serve this solve: {reason}. Use backend=\"jax\" (or "
                             f"\"auto\", which picks it).")
        return None
    try:
        from sciml.ensemble._ffi import target_for

        # Translating and building run on concrete values, outside the program being traced.
        with jax.ensure_compile_time_eval():
            spec, method = _spec(static, p)
            if static.backend == "auto" and _matrix_work(spec.rhs.jaxpr) > AUTO_MATRIX_WORK:
                return None
            target = target_for(spec, method)
    except Exception as err:  # an operation the translator does not take, no compiler, a closed-over tracer
        if static.backend == "c":
            raise
        if isinstance(err, (BackendUnavailableError, CompileError, AttributeError)):
            # No compiler, no usable FFI headers or an older JAX without `jax.ffi`: every later
            # solve would pay the same failed attempt, so "auto" stops trying in this process.
            _UNAVAILABLE.append(repr(err))
        return None
    adjoint = static.adjoint
    if isinstance(adjoint, Auto):
        adjoint, _ = adjoint.choose(p.f, p.y0, p.args, p.cfg.solver, p.cfg.max_steps, False, None)
    if getattr(adjoint, "checkpoints", None) is not None:
        # A checkpointed forward pass bounds each interval's steps; the kernel's solve would not, so
        # the same call could succeed without gradients and fail with them.
        if static.backend == "c":
            raise ValueError(f"`backend=\"c\"` does not serve this solve: `adjoint={adjoint!r}` splits the "
                             f"forward solve into checkpointed intervals. Use backend=\"jax\" (or \"auto\").")
        return None
    names = stat_names(method)
    dtmax = p.cfg.controller.dtmax
    # Custom rules may not close over traced values: those of the field become explicit inputs.
    cfg, g, params = hoist_closure(p.cfg, p.f, p.s0, p.y0, p.args)

    def xla(y0, s0, s1, params, s_ts, rtol, atol, dt0, direction):
        res = adjoint.integrate(cfg, g, y0, s0, s1, params, s_ts, rtol, atol, dt0)
        return KernelResult(res.t, res.y, res.ys, res.status, res.stats, res.n_accept, res.dt)

    def kernel(y0, s0, s1, params, s_ts, rtol, atol, dt0, direction):
        from sciml.ensemble._ffi import kernel_call

        time = spec.time_dtype
        tp = jnp.stack([jnp.asarray(s0, time), jnp.asarray(s1, time), jnp.asarray(direction, time),
                        jnp.zeros((), time) if dt0 is None else jnp.asarray(dt0, time),
                        jnp.asarray(np.inf if dtmax is None else dtmax, time)])
        n = y0.shape[0]
        tol = jnp.concatenate([jnp.broadcast_to(rtol, (n,)), jnp.broadcast_to(atol, (n,))])
        ys, y_final, tout, iout = kernel_call(target, spec, method, y0, jax.tree_util.tree_leaves(params[0]), tp,
                                              s_ts, tol, cfg.max_steps)
        # The XLA loop's dtypes and shapes (the custom rules check that both sides agree).
        stats = {name: iout[k] for k, name in enumerate(names) if k}
        return KernelResult(t=tout[0], y=y_final, ys=jnp.zeros((0, n), y0.dtype) if ys is None else ys,
                            status=iout[0], stats=stats, n_accept=stats["naccept"], dt=tout[1])

    primals = (p.y0, p.s0, p.s1, params, p.s_ts, p.rtol, p.atol, p.dt0, p.direction)
    if isinstance(adjoint, Forward):
        solve = jax.custom_jvp(kernel)
        solve.defjvp(lambda primals, tangents: jax.jvp(xla, primals, tangents))
    else:
        solve = jax.custom_vjp(kernel)
        solve.defvjp(lambda *primals: jax.vjp(xla, *primals), lambda pullback, ct: pullback(ct))
    return solve(*primals)


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
    if state_unserved(p.y0.dtype):
        return state_unserved(p.y0.dtype)
    if np.dtype(p.time_dtype) not in (np.float32, np.float64):
        return f"its times are float32/float64, not {p.time_dtype}"
    return ""


def _spec(static, p):
    """The kernel spec of ``p``'s forward-time, flat vector field (translated from its jaxpr)."""
    from sciml._flat import flatten
    from sciml.ensemble._kernel import _aval, _Static, _spec_uncached

    leaves, treedef = jax.tree_util.tree_flatten(p.args)
    avals = tuple(_aval(x, False) for x in leaves)
    y_leaf = jax.tree_util.tree_structure(0)
    # The user's field in its own time (the kernel handles the direction of integration itself: a
    # traced direction closed over by the loop's forward-time field could not become C).
    kernel_static = _Static(
        f=lambda t, y, a: flatten(p.f_user(t, p.unflatten(y), a))[0], y_treedef=y_leaf,
        y_avals=((tuple(p.y0.shape), np.dtype(p.y0.dtype)),), args_treedef=treedef, arg_avals=avals,
        solver=static.solver, state_dtype=np.dtype(p.y0.dtype),
        time_dtype=np.dtype(p.time_dtype), save=p.s_ts.shape[0] > 0, adaptive=static.adaptive,
        auto_dt0=static.auto_dt0)
    return _spec_uncached(kernel_static)
