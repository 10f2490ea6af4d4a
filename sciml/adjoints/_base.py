"""The interface every adjoint (sensitivity method) implements.

An adjoint is a strategy object passed as ``solve(..., adjoint=...)``. It runs the same forward loop
(``sciml.solvers._loop.integrate``) and decides how derivatives of its result are computed. The loop
sees a flat state and forward time; ``f(s, y, args)`` is flat too.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class AbstractAdjoint:
    """Base class. Subclasses are frozen dataclasses and implement ``integrate``."""

    def integrate(self, cfg, f, y0, s0, s1, args, s_ts, rtol, atol, dt0):
        """Run the loop (``LoopConfig`` ``cfg``) and return its ``LoopResult``, differentiable as the
        method defines."""
        raise NotImplementedError

    def resolve(self, cfg, f, y0, args) -> "AbstractAdjoint":
        """The method that will run for this problem (`Auto` picks one; every other method is itself)."""
        return self

    def wrap_primal(self, primal, reference):
        """``primal`` (another backend's forward solve) differentiated by this method.

        ``reference`` runs this method's own loop on the same inputs and returns the same structure; the
        result computes values with ``primal`` and derivatives exactly as ``reference`` would (a
        reverse-mode rule here; `Forward` overrides it with a forward-mode one). Returns None where this
        method's derivatives need its own forward pass.
        """
        solve = jax.custom_vjp(primal)
        solve.defvjp(lambda *primals: jax.vjp(reference, *primals), lambda pullback, ct: pullback(ct))
        return solve

    def __repr__(self) -> str:
        fields = getattr(self, "__dataclass_fields__", {})
        inner = ", ".join(f"{k}={getattr(self, k)!r}" for k in fields)
        return f"{type(self).__name__}({inner})"


class Problem(NamedTuple):
    """The inputs of one solve, as the custom rules see them."""

    y0: jax.Array
    s0: jax.Array
    s1: jax.Array
    params: object
    s_ts: jax.Array
    rtol: jax.Array
    atol: jax.Array
    dt0: object


def hoist_closure(cfg, f, s0, y0, args):
    """Make every traced value that ``f`` (and the event functions) close over an explicit argument.

    Returns ``(cfg, g, params)`` with ``g(s, y, params) == f(s, y, args)``, ``params = (args, consts)``
    and ``cfg.events`` rewritten the same way, so a custom derivative rule sees (and differentiates)
    every input of the vector field.
    """
    f_conv, f_consts = jax.closure_convert(f, s0, y0, args)
    n_f = len(f_consts)
    consts = list(f_consts)
    if cfg.events is not None:
        ev_conv, ev_consts = jax.closure_convert(cfg.events.values, s0, y0, args)
        consts += list(ev_consts)
        values = lambda s, y, p: ev_conv(s, y, p[0], *p[1][n_f:])  # noqa: E731
        cfg = dataclasses.replace(cfg, events=dataclasses.replace(cfg.events, values=values))
    g = lambda s, y, p: f_conv(s, y, p[0], *p[1][:n_f])  # noqa: E731
    return cfg, g, (args, consts)


def split_differentiable(tree):
    """Split a pytree into its inexact (differentiable) leaves and a function joining them back."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    mask = [jnp.issubdtype(jnp.result_type(x), jnp.inexact) for x in leaves]
    diff = [x for x, m in zip(leaves, mask) if m]
    rest = [x for x, m in zip(leaves, mask) if not m]

    def join(diff_leaves):
        it_d, it_r = iter(diff_leaves), iter(rest)
        return jax.tree_util.tree_unflatten(treedef, [next(it_d) if m else next(it_r) for m in mask])

    def cotangent(diff_cts):
        """Full-tree cotangent: the given cotangents for inexact leaves, float0 zeros for the rest."""
        it = iter(diff_cts)
        out = [next(it) if m else _float0_like(x) for x, m in zip(leaves, mask)]
        return jax.tree_util.tree_unflatten(treedef, out)

    return diff, join, cotangent


def _float0_like(x):
    return np.zeros(np.shape(x), dtype=jax.dtypes.float0)


def zero_cotangent(tree):
    """Zero cotangents for a pytree (float0 for integer leaves)."""
    def z(x):
        if jnp.issubdtype(jnp.result_type(x), jnp.inexact):
            return jnp.zeros_like(x)
        return _float0_like(x)
    return jax.tree_util.tree_map(z, tree)


def real_dot(a, b):
    """The cotangent pairing JAX uses for a real input: Re(sum a*b), no conjugation."""
    return jnp.real(jnp.sum(a * b))


def endpoint_cotangents(g, params, ct, s0, s1, y0, s_end, y_end, ys, s_ts, lam0, stopped_early=False):
    """Cotangents of the time inputs and the final ``y0`` cotangent, shared by every reverse method.

    ``lam0`` is the adjoint at ``s0`` from the save points after ``s0`` and the final state; the save
    points at ``s0`` (which are ``y0`` itself) are added here. Times use the continuous relation
    ``dy(t)/dt = f(t, y(t))`` at the outputs. ``stopped_early`` (a terminal event; may be traced) makes the end time
    independent of ``s1``. Returns ``(lam0, ct_s0, ct_s1, ct_ts)``.
    """
    f_at = lambda s, y: g(s, y, params)  # noqa: E731
    ct_s1 = (real_dot(ct.y, f_at(s_end, y_end)) + jnp.real(ct.t)).astype(s1.dtype)
    ct_s1 = jnp.where(stopped_early, jnp.zeros_like(s1), ct_s1)
    ct_s0 = -real_dot(lam0, f_at(s0, y0)).astype(s0.dtype)
    m = s_ts.shape[0]
    if not m:
        return lam0, ct_s0, ct_s1, jnp.zeros_like(s_ts)
    lam0 = lam0 + jnp.sum(jnp.where((s_ts <= s0)[:, None], ct.ys, 0), axis=0)
    reached = s_ts <= s_end
    f_ts = jax.vmap(f_at)(s_ts, jnp.where(reached[:, None], ys, y0[None, :]))
    ct_ts = jnp.where(reached, jax.vmap(real_dot)(ct.ys, f_ts), 0).astype(s_ts.dtype)
    return lam0, ct_s0, ct_s1, ct_ts


def no_events(cfg, method: str, alternative: str = "`sciml.adjoints.Direct()` or `sciml.adjoints.Forward()`"):
    """Raise the error for a method that cannot differentiate through events."""
    if cfg.events is not None:
        raise NotImplementedError(
            f"`adjoint={method}` cannot differentiate through `events` (the event times depend on the "
            f"parameters, which a continuous adjoint does not see). Use {alternative}, or solve without "
            f"`events`.")


def no_step_records(cfg, method: str):
    """Raise the error for a method that differentiates only final states and save points."""
    if cfg.record_steps or cfg.record_dense:
        raise NotImplementedError(
            f"`adjoint={method}` differentiates the final state and `saveat` times, not "
            f"`saveat=\"steps\"`/`\"dense\"` (their step times depend on the parameters). Pass `saveat` "
            f"as an array of times, or use `adjoint=sciml.adjoints.Direct()`.")


def ravel_list(leaves, dtype):
    """Concatenate a list of arrays into one vector of ``dtype``; returns ``(vector, unravel)`` where
    ``unravel(v)`` gives the leaves back in their own dtypes."""
    shapes = [jnp.shape(x) for x in leaves]
    dtypes = [jnp.result_type(x) for x in leaves]
    sizes = [int(np.prod(sh, dtype=np.int64)) for sh in shapes]
    offsets = np.cumsum([0] + sizes)
    vec = (jnp.concatenate([jnp.ravel(x).astype(dtype) for x in leaves]) if leaves
           else jnp.zeros((0,), dtype))

    def unravel(v):
        return [v[offsets[i]:offsets[i + 1]].reshape(shapes[i]).astype(dtypes[i]) for i in range(len(leaves))]

    return vec, unravel


def resolved_dt0(cfg, g, y0, s0, s1, params, rtol, atol, dt0):
    """``dt0`` as an array: Hairer's initial guess (as the loop makes it) when ``dt0`` is None, without
    derivatives. Returns ``(dt0, extra_nfev)``: the guess costs the loop's extra evaluation."""
    from sciml.solvers._control import guess_order, initial_step, step_cap

    if dt0 is not None:
        return jnp.asarray(dt0, s0.dtype), 0
    solver = cfg.solver
    fb = lambda s, y: g(s, y, params)  # noqa: E731
    guess = initial_step(fb, s0, y0, fb(s0, y0), rtol, atol, guess_order(solver, cfg.controller), s0.dtype,
                         step_cap(s0, s1, cfg.controller.dtmax))
    return jax.lax.stop_gradient(guess), 1
