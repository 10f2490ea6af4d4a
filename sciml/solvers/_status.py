"""Per-trajectory status codes and the messages that explain them.

A solve never fails silently: every trajectory ends with one of these codes in ``sol.status``. Outside
``jit`` a failure raises :class:`SolveError` (when ``throw=True``); inside ``jit``/``vmap`` the code is
the record, ``sol.message()`` renders it, and ``throw=True`` raises at the boundary.
"""

from __future__ import annotations

import enum

import jax
import jax.numpy as jnp
import numpy as np

from sciml._device_callback import on_every_device
from sciml.distributed import to_host


class Status(enum.IntEnum):
    """Why a trajectory stopped. ``SUCCESS`` and ``EVENT`` are successes."""

    SUCCESS = 0
    MAX_STEPS = 1
    DT_UNDERFLOW = 2
    NONFINITE = 3
    EVENT = 4
    NEWTON_FAILED = 5
    BAD_SAVEAT = 6
    INCONSISTENT_INIT = 7    # a DAE's y0 fails its algebraic equations (init="check")
    INIT_FAILED = 8          # Newton could not make a DAE's y0 consistent (init="solve")


class SolveError(RuntimeError):
    """A solve stopped before reaching ``t1`` (see :class:`Status`). The message names the cause and the fix."""


_STIFF_HINT = "try a stiff solver such as `solver=sciml.solvers.Rodas5P()`"


def describe(status: int, t: float, dt: float, max_steps: int, looks_stiff: bool = False,
             time_dtype: str = "float64", solver_stiff: bool = False, init_residual: float | None = None) -> str:
    """The user-facing message for one trajectory's status code.

    ``solver_stiff``: the solve already used a stiff solver, so the message does not suggest one.
    ``looks_stiff``: an explicit solve stopped where the problem is stiff (``_stiffness.py``).
    """
    status = Status(int(status))
    if status is Status.SUCCESS:
        return "The solve reached t1 successfully."
    if status is Status.EVENT:
        return f"The solve stopped at a terminal event at t={t:.6g}."
    if status is Status.MAX_STEPS:
        fix = f"raise `max_steps` (now {max_steps})"
        if solver_stiff:
            return (f"the solve stopped at t={t:.6g} after `max_steps={max_steps}` steps (dt={dt:.3g}). "
                    f"Increase `max_steps` or loosen `rtol`/`atol`; the solver is already a stiff one, so a "
                    f"step this small points to a discontinuity or a very fast transient in `f` here.")
        if looks_stiff:
            return (f"the solve stopped at t={t:.6g} after `max_steps={max_steps}` steps (dt={dt:.3g}). "
                    f"The problem looks stiff: {_STIFF_HINT}, or {fix}.")
        return (f"the solve stopped at t={t:.6g} after `max_steps={max_steps}` steps (dt={dt:.3g}). "
                f"Increase `max_steps`, loosen `rtol`/`atol`, or if the problem is stiff {_STIFF_HINT}.")
    if status is Status.DT_UNDERFLOW:
        hint = ""
        if time_dtype == "float32":
            hint = " Time is float32; passing `t_span` as float64 arrays gives finer time resolution."
        if solver_stiff:
            return (f"the step size underflowed at t={t:.6g} (dt={dt:.3g} no longer changes t). The solution "
                    f"may blow up (a singularity) near this time, or `f` is discontinuous there: check the "
                    f"vector field, or stop before this time with an `Event`.{hint}")
        if looks_stiff:
            return (f"the step size underflowed at t={t:.6g} (dt={dt:.3g} no longer changes t). The problem "
                    f"looks stiff: {_STIFF_HINT}.{hint}")
        return (f"the step size underflowed at t={t:.6g} (dt={dt:.3g} no longer changes t). The solution "
                f"may blow up (a singularity) near this time, or the problem is very stiff: "
                f"{_STIFF_HINT}, or check the vector field.{hint}")
    if status is Status.NONFINITE:
        return (f"the state or the vector field became non-finite (NaN/Inf) at t={t:.6g}. Check `f` for "
                f"division by zero, log of negatives or overflow near this state, and that `y0`/`args` "
                f"are finite; if the solution truly blows up, stop earlier with an `Event`.")
    if status is Status.NEWTON_FAILED:
        return (f"the implicit solver's Newton iteration kept failing at t={t:.6g} (dt={dt:.3g}). "
                f"Try `solver=sciml.solvers.Rodas5P()` (no Newton loop) or supply `jac=`; if dt shrank to "
                f"nothing, the tolerances may lie below the rounding noise of the Newton solves (a badly scaled "
                f"problem at a tight `rtol`/`atol`): loosen them.")
    if status is Status.BAD_SAVEAT:
        return ("the save times (`saveat`, `t_eval`) were not finite, not sorted in the direction of "
                "integration, or outside `t_span`; they were traced values, so this could only be checked "
                "while solving. Nothing was computed at them (NaN). Pass finite, sorted times inside `t_span`.")
    residual = "" if init_residual is None else f" (max |residual| = {init_residual:.3g})"
    if status is Status.INCONSISTENT_INIT:
        return (f"`y0` is not consistent: the algebraic equations (the zero rows of `mass_matrix`, or for any "
                f"singular M the sums N^T f over its left null space N) are not satisfied at t0 to `atol`"
                f"{residual}. Pass a consistent `y0`, or `init=\"solve\"` to solve the algebraic variables.")
    if status is Status.INIT_FAILED:
        return (f"the consistent initialisation failed: Newton's iteration on the algebraic equations (the zero "
                f"rows of `mass_matrix`, or N^T f over its left null space N) did not converge at t0{residual}. "
                f"Start `y0` closer to a consistent state; if the algebraic equations do not determine the "
                f"algebraic variables (their Jacobian is singular), the problem may be of higher index (2 or "
                f"more), which these solvers do not solve: reduce it to index 1 (differentiate the constraint).")
    raise AssertionError(status)


def host(x) -> np.ndarray:
    """A NumPy copy of a JAX, NumPy or CuPy array; of a global array split over processes, the whole of it
    (gathered from every process: each must call this, as each runs the same program)."""
    if hasattr(x, "get") and hasattr(x, "__cuda_array_interface__"):
        return x.get()
    return to_host(x)


class Outcome:
    """What every solution class shares: ``success``, ``message()`` and ``raise_if_failed()``.

    A subclass has ``status``, ``t_final``, ``_last_dt`` and ``_max_steps``, and may add hints to the
    message through ``_hints()``; ``_always_list`` makes ``message()`` a list even for one status.
    """

    _always_list = False

    @property
    def success(self):
        """True where the solve reached ``t1`` or stopped at a terminal event."""
        return (self.status == Status.SUCCESS) | (self.status == Status.EVENT)

    def _hints(self) -> dict:
        return {}

    def message(self) -> str | list[str]:
        """Human-readable explanation of ``status``: one string, or one per trajectory (under ``vmap``
        and for ensembles). Needs concrete values."""
        status = host(self.status)
        t = np.broadcast_to(host(self.t_final).astype(np.float64), status.shape)
        dt = np.broadcast_to(np.abs(host(self._last_dt).astype(np.float64)), status.shape)
        time_dtype = str(host(self.t_final).dtype)
        msgs = [describe(int(s), float(ti), float(di), self._max_steps, time_dtype=time_dtype, **self._hints())
                for s, ti, di in zip(status.ravel(), t.ravel(), dt.ravel())]
        msgs = [m[0].upper() + m[1:] for m in msgs]
        return msgs[0] if status.ndim == 0 and not self._always_list else msgs

    def raise_if_failed(self):
        """Raise :class:`SolveError` if any trajectory failed (naming the first); return ``self`` otherwise."""
        bad = np.flatnonzero(failed(host(self.status)).ravel())
        if bad.size:
            msgs = self.message()
            if isinstance(msgs, list):
                msgs = f"{bad.size} of {len(msgs)} trajectories failed; the first (index {bad[0]}): {msgs[bad[0]]}"
            raise SolveError(msgs)
        return self


def failed(status) -> np.ndarray:
    """Boolean mask of trajectories whose status is a failure."""
    status = np.asarray(status)
    return (status != Status.SUCCESS) & (status != Status.EVENT)


def raise_on_failure(values, status, t, dt, max_steps: int, solver_stiff: bool = False,
                     time_dtype: str = "float64"):
    """Return ``values`` unchanged, raising :class:`SolveError` at run time if any ``status`` failed.

    For use inside ``jit``: the devices reduce the statuses to a summary (the count of failures, the
    first failing index, its status, time and step), and only if something failed does a branch run a
    host callback on that summary, which raises. Under ``vmap`` the check sees the whole batch at once
    (a custom batching rule), so the branch stays a branch and nothing but the summary leaves the
    devices; with the batch split over devices the reductions are the only communication. The callback
    runs on every device of the program (`sciml._device_callback`), so a sharded batch's devices all
    raise rather than wait for the one that did, and in a multi-process program every process raises
    the same error. ``values`` (the solve's outputs) pass through the failing branch so that the check cannot be
    optimised away where they are used. Differentiable (the identity for derivatives).
    """

    def report(count, first, size, code, t_i, dt_i):
        msg = describe(int(code), float(t_i), float(dt_i), max_steps, time_dtype=time_dtype,
                       solver_stiff=solver_stiff)
        prefix = f"trajectory {int(first)} of {int(size)}: " if int(size) > 1 else ""
        if int(count) > 1:
            prefix = f"{int(count)} of {int(size)} trajectories failed; {prefix}"
        raise SolveError(prefix + msg[0].upper() + msg[1:] +
                         " (Pass `throw=False` to get `sol.status` instead of an error.)")

    @jax.custom_batching.custom_vmap
    def guard(values, status, t, dt):
        # reductions only (a sharded batch all-reduces scalars; indexing it would gather it)
        bad = failed_mask(status).ravel()
        index = jnp.arange(bad.size, dtype=jnp.int32)
        first = jnp.min(jnp.where(bad, index, jnp.int32(bad.size)))
        at_first = index == first
        pick = lambda x: jnp.sum(jnp.where(at_first, jnp.broadcast_to(x, status.shape).ravel(), 0))  # noqa: E731
        summary = (jnp.sum(bad, dtype=jnp.int32), first, jnp.int32(bad.size), pick(status).astype(jnp.int32),
                   pick(t), jnp.abs(pick(dt)))

        def fail(values, summary):
            token = on_every_device(report, *summary)   # raises; the token keeps the call alive
            return jax.tree_util.tree_map(lambda v: v + token.astype(v.dtype), values)

        return jax.lax.cond(jnp.any(bad), fail, lambda values, summary: values, values, summary)

    @guard.def_vmap
    def _(axis_size, in_batched, values, status, t, dt):
        values_batched, status_b, t_b, dt_b = in_batched
        lead = lambda x, b: x if b else jnp.broadcast_to(x, (axis_size,) + jnp.shape(x))  # noqa: E731
        status = lead(status, status_b)
        t, dt = (jnp.broadcast_to(lead(x, b), status.shape) for x, b in ((t, t_b), (dt, dt_b)))
        return guard(values, status, t, dt), values_batched

    @jax.custom_jvp
    def check(values, status, t, dt):
        return guard(values, status, t, dt)

    @check.defjvp
    def _(primals, tangents):
        return check(*primals), tangents[0]

    return check(values, status, jax.lax.stop_gradient(t), jax.lax.stop_gradient(dt))


def failed_mask(status) -> jax.Array:
    """`failed` for traced statuses."""
    return (status != Status.SUCCESS) & (status != Status.EVENT)
