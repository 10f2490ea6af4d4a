"""A solver seen through a different error norm: the hook adjoints use on step-size control.

``Controlled(base, norm_size=k)`` measures the error only on the first ``k`` components of the state
(the seminorm of Kidger, Chen & Lyons 2021, "Hey, that's not an ODE": the parameter-gradient channel
of an adjoint feeds nothing back, so its error need not shrink the step). ``frozen=True`` stops
derivatives through the error norm, so differentiating a solve holds the controller's decisions as
data (forward sensitivities of the computed discrete map, and no ``sqrt(0)`` derivatives).
Everything else is the base solver's.
"""

from __future__ import annotations

import dataclasses

from jax import lax

from sciml.solvers._base import AbstractSolver


@dataclasses.dataclass(frozen=True)
class Controlled(AbstractSolver):
    base: AbstractSolver
    norm_size: int | None = None
    frozen: bool = False

    def __getattr__(self, name):  # class attributes (order, stiff, ...) and optional hooks (stats)
        if name in ("base", "norm_size", "frozen") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.base, name)

    order = property(lambda self: self.base.order)
    error_order = property(lambda self: self.base.error_order)
    stiff = property(lambda self: self.base.stiff)
    fevals_per_step = property(lambda self: self.base.fevals_per_step)
    fsal = property(lambda self: self.base.fsal)
    fevals_dense = property(lambda self: self.base.fevals_dense)

    def init(self, f, t0, y0, f0, dt0):
        return self.base.init(f, t0, y0, f0, dt0)

    def step(self, f, t, y, f0, dt, state):
        return self.base.step(f, t, y, f0, dt, state)

    def after_step(self, state_new, state_old, accept, dt, dt_next, err):
        return self.base.after_step(state_new, state_old, accept, dt, dt_next, err)

    def dense(self, f, t, y, dt, y1, f0, f1, info):
        return self.base.dense(f, t, y, dt, y1, f0, f1, info)

    def error_norm(self, y_err, y0, y1, rtol, atol):
        k = self.norm_size
        if k is not None:
            cut = lambda v: v[..., :k] if v.ndim else v  # noqa: E731
            y_err, y0, y1, rtol, atol = cut(y_err), cut(y0), cut(y1), cut(rtol), cut(atol)
        err = self.base.error_norm(y_err, y0, y1, rtol, atol)
        return lax.stop_gradient(err) if self.frozen else err

    def __repr__(self) -> str:
        return repr(self.base)
