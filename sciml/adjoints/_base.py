"""The interface every adjoint (sensitivity method) implements.

An adjoint is a strategy object passed as ``solve(..., adjoint=...)``. It runs the same forward loop
(``sciml.solvers._loop.integrate``) and decides how derivatives of its result are computed. The loop
sees a flat state and forward time; ``f(s, y, args)`` is flat too.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


class AbstractAdjoint:
    """Base class. Subclasses are frozen dataclasses and implement ``integrate``."""

    def integrate(self, cfg, f, y0, s0, s1, args, s_ts, rtol, atol, dt0):
        """Run the loop (``LoopConfig`` ``cfg``) and return its ``LoopResult``, differentiable as the
        method defines."""
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = getattr(self, "__dataclass_fields__", {})
        inner = ", ".join(f"{k}={getattr(self, k)!r}" for k in fields)
        return f"{type(self).__name__}({inner})"


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
    import numpy as np
    return np.zeros(np.shape(x), dtype=jax.dtypes.float0)


def zero_cotangent(tree):
    """Zero cotangents for a pytree (float0 for integer leaves)."""
    def z(x):
        if jnp.issubdtype(jnp.result_type(x), jnp.inexact):
            return jnp.zeros_like(x)
        return _float0_like(x)
    return jax.tree_util.tree_map(z, tree)
