"""The constant mass matrix of ``M y' = f(t, y, args)`` and the consistent initialisation of a DAE.

A singular ``M`` makes the problem a differential-algebraic equation: a row of zeros in ``M`` is an
algebraic equation ``0 = f_i(t, y)``. ``sciml.solve(..., mass_matrix=M)`` wraps ``M`` in a
`MassMatrix`, which the solvers that take one (``Rodas5P``, ``Rosenbrock23``, ``BDF``, ``RadauIIA5``)
carry as a static field: ``M`` is part of the compiled program, not a traced value. It is structure
(which equations are algebraic, which variables the initialisation may move), not a parameter: it is
known before tracing, its zero rows and columns are fixed indices, and one program serves every ``y0``
and ``args``. (A traced ``M`` is refused; a new ``M`` compiles a new program.)

Consistent initialisation (``init="solve"``, Brown, Hindmarsh & Petzold's "differential components
fixed" problem): the algebraic variables (zero columns of ``M``) are solved from the algebraic
equations (zero rows) at ``t0`` by full Newton iterations with the others held; the last iteration is
taken outside ``stop_gradient`` so that derivatives are those of the implicit function at the root.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

#: full Newton iterations of the initialisation (quadratic convergence: a start within the basin
#: needs 3-6)
INIT_ITER = 10
#: init modes of `sciml.solve`
INIT_MODES = ("solve", "check", "none")


@dataclasses.dataclass(frozen=True, eq=False)
class MassMatrix:
    """A constant ``(n, n)`` real mass matrix, hashable by value (a static option of the solve)."""

    value: np.ndarray

    def __post_init__(self):
        self.value.setflags(write=False)

    def __hash__(self):
        return hash((self.value.shape, self.value.dtype.str, self.value.tobytes()))

    def __eq__(self, other):
        return (isinstance(other, MassMatrix) and self.value.dtype == other.value.dtype
                and np.array_equal(self.value, other.value))

    def __repr__(self):
        return f"MassMatrix(shape={self.value.shape})"

    @property
    def n(self) -> int:
        return self.value.shape[0]

    @property
    def algebraic_rows(self) -> np.ndarray:
        """Indices of the algebraic equations (rows of zeros)."""
        return np.flatnonzero(~self.value.any(axis=1))

    @property
    def algebraic_cols(self) -> np.ndarray:
        """Indices of the algebraic variables (columns of zeros: no derivative of them appears)."""
        return np.flatnonzero(~self.value.any(axis=0))

    @property
    def singular(self) -> bool:
        return bool(np.linalg.matrix_rank(self.value.astype(np.float64)) < self.n)

    def array(self, dtype) -> jax.Array:
        """``M`` in ``dtype`` (the caller checked that the cast is exact, `check_exact`)."""
        return jnp.asarray(self.value.astype(np.dtype(dtype)))

    def check_exact(self, dtype) -> None:
        """Refuse a state dtype in which ``M``'s entries are not exactly representable (no silent rounding)."""
        if not np.array_equal(self.value.astype(np.dtype(dtype)), self.value):   # complex dtypes too
            raise TypeError(f"`mass_matrix` ({self.value.dtype.name}) has entries that {np.dtype(dtype).name}, the "
                            f"state's dtype, cannot represent exactly; pass `mass_matrix` in "
                            f"{np.dtype(dtype).name} (or solve in float64).")


def times(mass, v):
    """``M v`` for a flat ``v`` (``mass=None``: ``v``); ``mass`` is a `MassMatrix` or an array."""
    if mass is None:
        return v
    m = mass.array(v.dtype) if isinstance(mass, MassMatrix) else mass
    return m @ v


def pseudo_inverse(mass: MassMatrix, dtype) -> jax.Array:
    """``M^+`` (NumPy, float64, then cast): ``y' = M^+ f`` on the differential part at a start."""
    return jnp.asarray(np.linalg.pinv(mass.value.astype(np.float64)).astype(np.dtype(dtype)))


class Init:
    """The outcome of the initialisation: the state to start from and what happened."""

    def __init__(self, y0, residual, converged, adjusted):
        self.y0, self.residual, self.converged, self.adjusted = y0, residual, converged, adjusted


def consistent(f, s0, y0, args, mass: MassMatrix, mode: str, rtol, atol) -> Init:
    """Make ``y0`` consistent (``mode="solve"``) or measure it (``"check"``, ``"none"``); traced.

    ``f(s, y, args)`` is the flat field. ``residual``: ``max |f_i(s0, y0)|`` over the algebraic rows
    at the returned ``y0``; ``converged``: whether the state is consistent (for ``"solve"``: Newton's
    last correction is below 1e-3 of the tolerances; for ``"check"``: every algebraic residual is below
    ``atol``, scaled as the solver's error norm would); ``adjusted``: whether ``y0`` changed.
    """
    rows, cols = mass.algebraic_rows, mass.algebraic_cols
    true = jnp.asarray(True)

    def g(z, y, a):
        return f(s0, y.at[cols].set(z), a)[rows]

    def measure(y):
        r = f(s0, y, args)[rows]
        return jnp.max(jnp.abs(r)) if rows.size else jnp.zeros((), y.real.dtype)

    if mode == "none" or rows.size == 0:
        return Init(y0, measure(y0), true, jnp.asarray(False))
    if mode == "check":
        r = f(s0, y0, args)[rows]
        scale = atol[rows] if jnp.ndim(atol) else atol
        return Init(y0, jnp.max(jnp.abs(r)), jnp.all(jnp.abs(r) <= scale), jnp.asarray(False))

    def newton(z, y, a):
        J = jax.jacfwd(g, holomorphic=bool(jnp.iscomplexobj(z)))(z, y, a)   # a complex state: f holomorphic
        return z - jnp.linalg.solve(J, g(z, y, a))

    z0 = y0[cols]
    z = lax.fori_loop(0, INIT_ITER - 1, lambda _, z: newton(z, *lax.stop_gradient((y0, args))),
                      lax.stop_gradient(z0))
    z = lax.stop_gradient(z)
    z_last = newton(z, y0, args)         # differentiable: the implicit function's derivative at the root
    sc_atol = atol[cols] if jnp.ndim(atol) else atol
    sc_rtol = rtol[cols] if jnp.ndim(rtol) else rtol
    scale = sc_atol + sc_rtol * jnp.abs(z)
    step = jnp.sqrt(jnp.mean(jnp.square((z_last - z) / scale)))
    converged = jnp.isfinite(step) & (step <= 1e-3)
    y_new = y0.at[cols].set(z_last)
    return Init(y_new, measure(y_new), converged, jnp.any(y_new != y0))
