"""The consistent initialisation of a DAE ensemble on the kernel backends (``solve_ensemble(backend="c")``,
``"cupy"``, with a singular ``mass_matrix``).

The kernel integrates from the ``y0`` it is given; making ``y0`` consistent stays in JAX, as in the
XLA loop's pipeline (`sciml._integrate.to_loop`): `sciml.solvers._mass.consistent` runs on every
trajectory (``jax.vmap``, one jitted program per kernel spec, ``M`` and init mode) before the launch,
on the same forward-time field, and its outcome becomes each trajectory's status (``INIT_FAILED``,
``INCONSISTENT_INIT``) and its ``init_adjusted``/``init_residual`` statistics, exactly as
`sciml._integrate.build_solution` does for a single solve. A single solve with ``backend="c"`` needs
nothing from here: its pipeline initialises before it reaches the kernel.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sciml._flat import flatten
from sciml.solvers._mass import consistent
from sciml.solvers._status import Status


class EnsembleInit(NamedTuple):
    """Every trajectory's initialisation (arrays of the launch's kind, trajectory axis first)."""

    y0: Any          # (N, n) the states the kernel starts from
    converged: Any   # (N,) bool
    residual: Any    # (N,) the largest algebraic residual at y0
    adjusted: Any    # (N,) bool: whether y0 changed


def initialise(static, rebuild, problem, options, tp: np.ndarray, tol: np.ndarray, to_xp) -> EnsembleInit | None:
    """The initialisation of an ensemble ``problem`` for the kernel of ``static`` (`_launch._Static`), or
    None without a singular mass matrix. ``rebuild(args_treedef, arg_avals, leaves)``: ``args`` from its
    array leaves (`_launch._rebuild`); ``tp``: the kernel's time parameters (`_launch.time_inputs`);
    ``tol``: ``(2n,)`` rtol then atol; ``to_xp`` converts the results to the launch's array kind.

    Raises:
        TypeError: ``M`` has entries the state's dtype cannot represent (as `sciml.solve` raises).
    """
    mass = options.mass_matrix
    if mass is None:
        return None
    mass.check_exact(static.state_dtype)
    if not mass.singular:
        return None
    n = mass.n
    run = _program(static, rebuild, mass, options.init, tuple(options.batched))
    y0 = jnp.asarray(jax.tree_util.tree_leaves(problem.y0)[0]).astype(static.state_dtype)
    s0, direction = jnp.asarray(tp[0], static.time_dtype), jnp.asarray(tp[2], static.time_dtype)
    out = run(y0, list(problem.args), s0, direction, jnp.asarray(tol[:n]), jnp.asarray(tol[n:]))
    return EnsembleInit(*(to_xp(x) for x in out))


def apply_init(fields: dict, init: EnsembleInit | None, mode: str, iout, xp, convert) -> dict:
    """``fields`` (of `_launch._solution`) with the initialisation's failures as statuses and its
    ``init_adjusted``/``init_residual`` statistics (``iout``: the launch's integer outputs)."""
    if init is None:
        return fields
    bad = Status.INIT_FAILED if mode == "solve" else Status.INCONSISTENT_INIT
    status = xp.where(init.converged, iout[:, 0], np.int32(bad)).astype(np.int32)
    stats = dict(fields["stats"], init_adjusted=convert(init.adjusted), init_residual=convert(init.residual))
    return dict(fields, status=convert(status), stats=stats)


def _program(static, rebuild, mass, mode: str, batched: tuple):
    try:
        return _program_cached(static, rebuild, mass, mode, batched)
    except TypeError:  # an unhashable f or static arg: build for this call only
        return _make_program(static, rebuild, mass, mode, batched)


@functools.lru_cache(maxsize=32)
def _program_cached(static, rebuild, mass, mode, batched):
    return _make_program(static, rebuild, mass, mode, batched)


def _make_program(static, rebuild, mass, mode: str, batched: tuple):
    """``(y0s, args, s0, direction, rtol, atol) -> (y0s, converged, residual, adjusted)``, jitted: `consistent`
    on the field in forward time ``s = direction t``, as `sciml._integrate.to_loop` builds it."""
    state, real = static.state_dtype, np.dtype(static.state_dtype)

    def one(y0, args, s0, direction, rtol, atol):
        def f_forward(s, y, a):
            t = (s * direction).astype(real)        # the field sees t in the state's real dtype
            out = static.f(t, y, rebuild(static.args_treedef, static.arg_avals, a))
            return direction.astype(real) * flatten(out)[0].astype(state)

        init = consistent(f_forward, s0, y0, args, mass, mode, rtol, atol)
        return init.y0, init.converged, init.residual, init.adjusted

    return jax.jit(jax.vmap(one, in_axes=(0, [0 if b else None for b in batched], None, None, None, None)))
