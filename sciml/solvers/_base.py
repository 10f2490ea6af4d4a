"""The small interface every solver implements, and the dense-output polynomials they share.

The integration loop (``_loop.py``) knows no method by name. A solver turns one step attempt into a
:class:`Step`; after the loop accepts it, ``dense`` turns the step into polynomial coefficients
``c`` with ``y(t + theta*dt) = sum_p c[p] * theta**p`` for ``theta`` in ``[0, 1]``. All vectors are
flat (shape ``(n,)``) in the state dtype; ``f(t, y)`` has the problem's args already bound.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from sciml.solvers._control import error_norm


class Step(NamedTuple):
    """The outcome of one step attempt from ``(t, y)`` with step ``dt``."""

    y1: jax.Array            # candidate state at t + dt
    y_err: jax.Array         # local error estimate (zeros for fixed-step methods)
    f1: Any                  # f(t + dt, y1) when the method gets it for free (FSAL), else None
    info: Any                # whatever `dense` needs (e.g. the stages), a pytree
    state: Any               # solver state carried to the next attempt (e.g. a Jacobian)
    ok: Any                  # False when an implicit solve failed (the step is then rejected)


class AbstractSolver:
    """Base of every solver. Subclasses are frozen dataclasses (hashable, usable as static args)."""

    #: global order of the method
    order: ClassVar[int]
    #: exponent denominator for step control (order of the embedded method + 1); None: fixed-step only
    error_order: ClassVar[int | None] = None
    #: True for implicit/Rosenbrock methods (used by `Auto` adjoint selection and messages)
    stiff: ClassVar[bool] = False
    #: evaluations of f in one step attempt, the FSAL reuse of the first stage already counted
    fevals_per_step: ClassVar[int]
    #: whether `Step.f1` is always given
    fsal: ClassVar[bool] = False
    #: extra evaluations of f made by `dense` (beyond f1)
    fevals_dense: ClassVar[int] = 0

    def init(self, f, t0, y0, f0, dt0) -> Any:
        """Solver state before the first step (default: none)."""
        return ()

    def step(self, f, t, y, f0, dt, state) -> Step:
        raise NotImplementedError

    def after_step(self, state_new, state_old, accept, dt, dt_next, err):
        """Carry the solver state to the next attempt, knowing whether this one was accepted.

        Returns ``(state, dt_next)``; a method with its own step-size (and order) selection, such as
        BDF, may replace the controller's ``dt_next``. Default: keep the new state and the step.
        """
        return state_new, dt_next

    def error_norm(self, y_err, y0, y1, rtol, atol) -> jax.Array:
        """Scaled error of a step (accept when <= 1); Hairer's mixed-tolerance RMS norm by default."""
        return error_norm(y_err, y0, y1, rtol, atol)

    def dense(self, f, t, y, dt, y1, f0, f1, info) -> jax.Array:
        """Coefficients ``(degree + 1, n)`` of the step's interpolating polynomial in theta."""
        return hermite(y, y1, f0, f1, dt)

    @property
    def adaptive(self) -> bool:
        return self.error_order is not None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def dense_degree(solver, coefficients) -> int:
    """Degree of ``solver``'s step polynomial: its ``dense_degree`` where it states one, else from
    ``jax.eval_shape(coefficients)`` (a traced step: a trace of ``f`` per stage, which is slow)."""
    known = getattr(solver, "dense_degree", None)
    return known if isinstance(known, int) else jax.eval_shape(coefficients).shape[0] - 1


def hermite(y0, y1, f0, f1, dt) -> jax.Array:
    """Cubic Hermite interpolation from the end values and derivatives of a step."""
    h = dt.astype(y0.dtype)
    dy = y1 - y0
    return jnp.stack([y0, h * f0, 3 * dy - h * (2 * f0 + f1), -2 * dy + h * (f0 + f1)])


def evaluate_polynomial(coeffs: jax.Array, theta) -> jax.Array:
    """Horner evaluation of ``sum_p coeffs[p] * theta**p``: shape ``theta.shape + (n,)``."""
    theta = jnp.asarray(theta).astype(coeffs.dtype)[..., None]
    value = coeffs[-1]
    for p in range(coeffs.shape[0] - 2, -1, -1):
        value = value * theta + coeffs[p]
    return value


def evaluate_dense(starts, dts, coeffs, n_steps, s) -> jax.Array:
    """The piecewise polynomial of recorded steps at forward time(s) ``s`` (any shape).

    Step ``k`` covers ``(starts[k], starts[k] + dts[k]]`` with coefficients ``coeffs[k]``; only the first
    ``n_steps`` steps are valid. Times outside are extrapolated from the first/last step. Returns shape
    ``s.shape + (n,)``.
    """
    s = jnp.asarray(s).astype(starts.dtype)
    n = jnp.maximum(n_steps, 1)
    idx = jnp.clip(jnp.searchsorted(starts[1:], s.ravel(), side="left"), 0, n - 1)
    theta = (s.ravel() - starts[idx]) / dts[idx]
    flat = jax.vmap(evaluate_polynomial)(coeffs[idx], theta)
    return flat.reshape(s.shape + flat.shape[1:])
