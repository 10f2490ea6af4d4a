"""Explicit Runge-Kutta methods driven by a validated Butcher tableau.

A method is a tableau (``_tableaus_*.py``) plus a three-line subclass (``explicit.py``). The stages are
unrolled into straight-line code with zero coefficients skipped, so XLA sees a handful of fused
elementwise kernels per step.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax.numpy as jnp

from sciml.solvers._base import AbstractSolver, Step, hermite
from sciml.solvers._tableau import ButcherTableau


def _combine(y, h, weights, ks):
    """``y + h * sum_i w_i k_i`` (``y=None`` means 0), skipping zero weights; weights are Python floats."""
    acc = None
    for w, k in zip(weights, ks):
        if w != 0.0:
            term = float(w) * k
            acc = term if acc is None else acc + term
    if acc is None:
        return jnp.zeros_like(ks[0]) if y is None else y
    acc = h * acc
    return acc if y is None else y + acc


@dataclasses.dataclass(frozen=True)
class ExplicitRK(AbstractSolver):
    """Base of the explicit RK family. Subclasses set ``tableau``."""

    tableau: ClassVar[ButcherTableau]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        tab = cls.__dict__.get("tableau")
        if tab is None:
            return
        cls.order = tab.order
        if tab.b_err is None:
            cls.error_order = None
        elif tab.b_err3 is not None:
            # Hairer's DOP853 estimator combines the 5th- and 3rd-order errors into one that
            # behaves like h^8 (scipy's DOP853 does the same).
            cls.error_order = tab.order
        else:
            cls.error_order = tab.error_order + 1
        cls.fsal = tab.fsal
        cls.fevals_per_step = len(tab.c) - 1
        extra = len(tab.c_extra)
        cls._reuse_f1 = extra > 0 and tab.first_extra_is_f1
        cls.fevals_dense = extra - int(cls._reuse_f1)

    @property
    def dense_degree(self) -> int:
        """Degree of `dense`'s polynomial in theta (cubic Hermite without a continuous extension)."""
        return 3 if self.tableau.b_dense is None else self.tableau.dense_degree

    def step(self, f, t, y, f0, dt, state) -> Step:
        tab = self.tableau
        h = dt.astype(y.dtype)
        ks = [f0]
        for i in range(1, len(tab.c)):
            yi = _combine(y, h, tab.a[i], ks)
            ks.append(f(t + tab.c[i] * dt, yi))
        if tab.fsal:
            y1 = _combine(y, h, tab.a[-1], ks[:-1])
            f1 = ks[-1]
        else:
            y1 = _combine(y, h, tab.b, ks)
            f1 = None
        if tab.b_err is None:
            y_err = jnp.zeros_like(y)
        elif tab.b_err3 is None:
            y_err = _combine(None, h, tab.b_err, ks)
        else:
            y_err = jnp.stack([_combine(None, h, tab.b_err, ks), _combine(None, h, tab.b_err3, ks)])
        return Step(y1=y1, y_err=y_err, f1=f1, info=tuple(ks), state=state, ok=jnp.asarray(True))

    def error_norm(self, y_err, y0, y1, rtol, atol):
        if self.tableau.b_err3 is None:
            return super().error_norm(y_err, y0, y1, rtol, atol)
        # |e5|^2 / sqrt(|e5|^2 + 0.01 |e3|^2) in the scaled RMS norm (Hairer's dop853.f).
        e5 = super().error_norm(y_err[0], y0, y1, rtol, atol)
        e3 = super().error_norm(y_err[1], y0, y1, rtol, atol)
        denom = jnp.sqrt(e5 * e5 + 0.01 * e3 * e3)
        return jnp.where(denom > 0, e5 * e5 / jnp.where(denom > 0, denom, 1), 0.0)

    def dense(self, f, t, y, dt, y1, f0, f1, info):
        tab = self.tableau
        if tab.b_dense is None:
            return hermite(y, y1, f0, f1, dt)
        h = dt.astype(y.dtype)
        ks = list(info)
        for r, (c, row) in enumerate(zip(tab.c_extra, tab.a_extra)):
            if r == 0 and self._reuse_f1:
                ks.append(f1)
            else:
                ks.append(f(t + c * dt, _combine(y, h, row, ks)))
        degree = len(tab.b_dense[0])
        coeffs = [y] + [_combine(None, h, [row[p] for row in tab.b_dense], ks) for p in range(degree)]
        return jnp.stack(coeffs)
