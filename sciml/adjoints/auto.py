"""Auto: pick a sensitivity method from the problem's size, the solver and the memory it would take."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from sciml.adjoints._base import AbstractAdjoint
from sciml.adjoints.direct import Direct
from sciml.adjoints.forward import Forward
from sciml.adjoints.interpolating import Interpolating
from sciml.adjoints.quadrature import Quadrature


def _count(tree) -> int:
    """Number of differentiable (floating/complex) numbers in a pytree; other leaves count nothing."""
    total = 0
    for leaf in jax.tree_util.tree_leaves(tree):
        if isinstance(leaf, (jax.Array, np.ndarray, np.generic, float, complex)) and not isinstance(leaf, bool):
            if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact):
                total += int(np.prod(np.shape(leaf), dtype=np.int64))
    return total


@dataclasses.dataclass(frozen=True)
class Auto(AbstractAdjoint):
    """Choose the adjoint from the state size ``n``, parameter count ``p``, the solver and memory.

    The rules, first match wins:

    1. ``n + p <= forward_limit`` (100): ``Forward`` -- a handful of tangent directions is cheapest,
       and it also serves ``jax.jvp``/``jax.jacfwd``/``jax.hessian``.
    2. ``events``, ``saveat="steps"``/``"dense"`` or a mass matrix (a DAE): ``Direct`` (the continuous
       adjoints refuse them);
       ``Forward`` for a multistep solver (BDF), whose steps ``Direct`` cannot replay one at a time.
    3. A stiff solver: ``Quadrature`` if ``p > n`` (the backward stiff solve stays ``n``-dimensional),
       else ``Interpolating`` (stable: the state is read from the forward solution, never re-solved
       backward).
    4. The step record of ``Direct`` would exceed ``memory_limit`` bytes (``max_steps`` steps):
       ``Direct(checkpoints=k)`` with ``k ~ sqrt(max_steps)``.
    5. Otherwise ``Direct``: the exact gradient of what was computed, and the fastest reverse method
       for non-stiff problems in ``benchmarks/bench_adjoints.py``.

    ``Auto().choose(f, y0, args, solver)`` returns ``(method, reason)`` without solving anything.

    Example:
        >>> import jax.numpy as jnp, sciml
        >>> method, reason = sciml.adjoints.Auto().choose(
        ...     lambda t, y, p: -p * y, jnp.ones(2), jnp.ones(3), sciml.solvers.Tsit5())
        >>> method
        Forward()
    """

    forward_limit: int = 100
    memory_limit: float = 2.0 ** 31

    def choose(self, f=None, y0=None, args=None, solver=None, max_steps: int = 100_000, events=None,
               saveat=None):
        """Return ``(adjoint, reason)`` for a problem: the arguments as given to ``sciml.solve``."""
        n, p = _count(y0), _count(args)
        stiff = bool(getattr(solver, "stiff", False))
        if n + p <= self.forward_limit:
            return Forward(), f"Forward: n + p = {n} + {p} <= {self.forward_limit}, few tangent directions"
        if events or isinstance(saveat, str) or getattr(solver, "mass_matrix", None) is not None:
            what = "events" if events else f"saveat={saveat!r}" if isinstance(saveat, str) else "a mass matrix (DAE)"
            if getattr(solver, "multistep", False):
                return Forward(), (f"Forward: {what} need a discrete adjoint, and {type(solver).__name__} is "
                                   f"multistep (Direct replays single steps)")
            return Direct(), f"Direct: {what} need a discrete adjoint (n = {n}, p = {p})"
        if stiff and p > n:
            return Quadrature(), (f"Quadrature: stiff solver and p = {p} > n = {n}; the backward stiff solve "
                                  f"stays n-dimensional")
        if stiff:
            return Interpolating(), ("Interpolating: stiff solver; the adjoint reads the stored forward "
                                     "solution, which is stable")
        itemsize = jnp.dtype(jnp.result_type(*jax.tree_util.tree_leaves(y0))).itemsize if n else 8
        record = float(max_steps) * (n + 2) * itemsize
        if record > self.memory_limit:
            k = int(np.ceil(np.sqrt(max_steps)))
            return Direct(checkpoints=k), (f"Direct(checkpoints={k}): recording {max_steps} steps of n = {n} "
                                           f"would take {record / 2**30:.1f} GiB")
        return Direct(), f"Direct: non-stiff, n = {n}, p = {p}; exact gradient of the computed solution"

    def resolve(self, cfg, f, y0, args) -> AbstractAdjoint:
        saveat = "steps" if (cfg.record_steps or cfg.record_dense) else None
        return self.choose(f, y0, args, cfg.solver, cfg.max_steps, cfg.events is not None, saveat)[0]

    def integrate(self, cfg, f, y0, s0, s1, args, s_ts, rtol, atol, dt0):
        return self.resolve(cfg, f, y0, args).integrate(cfg, f, y0, s0, s1, args, s_ts, rtol, atol, dt0)

    def wrap_primal(self, primal, reference):
        raise TypeError("`Auto` runs the method it chooses: call `resolve(...)` first and wrap with that.")
