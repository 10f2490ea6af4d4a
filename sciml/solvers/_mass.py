"""The constant mass matrix of ``M y' = f(t, y, args)`` and the consistent initialisation of a DAE.

A singular ``M`` makes the problem a differential-algebraic equation. Its algebraic equations are
``N^T f(t, y) = 0`` for ``N`` a basis of the left null space of ``M`` (``N^T M = 0``): in semi-explicit
form (a row of zeros for each) they are the rows ``0 = f_i(t, y)``; otherwise they are sums of rows
(the transistor amplifier's Kirchhoff laws at the nodes a capacitor joins). ``sciml.solve(...,
mass_matrix=M)`` wraps ``M`` in a `MassMatrix`, which the solvers that take one (``Rodas5P``,
``Rosenbrock23``, ``BDF``, ``RadauIIA5``) carry as a static field: ``M`` is part of the compiled program,
not a traced value. It is structure (which equations are algebraic, which directions the initialisation
may move), not a parameter: it is known before tracing, its null spaces are computed once in NumPy, and
one program serves every ``y0`` and ``args``. (A traced ``M`` is refused; a new ``M`` compiles a new
program.)

Consistent initialisation (``init="solve"``, Brown, Hindmarsh & Petzold's "differential components
fixed" problem): ``y0`` moves only along the right null space of ``M`` (``y0 + V0 z`` with ``M V0 = 0``
keeps ``M y0``, the differential part, fixed) until the algebraic equations hold at ``t0``; in
semi-explicit form that is: the algebraic variables (zero columns of ``M``) are solved from the zero
rows with the others held. Full Newton iterations; the last is taken outside ``stop_gradient`` so that
derivatives are those of the implicit function at the root.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

#: full Newton iterations of the initialisation (quadratic convergence: a start within the basin
#: needs 3-6)
INIT_ITER = 10
#: Newton has converged when its last correction is below this fraction of the tolerances (in the
#: solver's RMS error norm) ...
INIT_STEP = 1e-3
#: ... or below this many ulps of the state: the rounding of ``f`` and of ``N^T f`` leaves a correction
#: of a few ulps, above ``1e-3 rtol`` once ``rtol <~ 1e3 eps`` (float32 at ``rtol = 1e-4``)
INIT_ROUNDING = 100
#: init modes of `sciml.solve`
INIT_MODES = ("solve", "check", "none")


@dataclasses.dataclass(frozen=True, eq=False)
class MassMatrix:
    """A constant ``(n, n)`` real mass matrix, hashable by value (a static option of the solve).

    Its rank and null spaces come from one SVD in NumPy float64, computed once (``M`` is concrete):
    ``algebraic_equations`` ``N`` (``(n, k)``, orthonormal, ``N^T M = 0``: the algebraic equations are
    ``N^T f = 0``) and ``algebraic_directions`` ``V0`` (``(n, k)``, orthonormal, ``M V0 = 0``), with
    ``k = n - rank``. ``semi_explicit``: the zero rows and columns span them (then the initialisation
    selects indices, ``algebraic_rows``/``algebraic_cols``). ``N`` and ``V0`` are derived float64 data,
    cast to the state's dtype where used (`check_exact` concerns ``M`` itself).

    Example:
        >>> import numpy as np
        >>> m = MassMatrix(np.array([[1.0, -1.0], [-1.0, 1.0]]))
        >>> m.rank, m.semi_explicit, np.abs(m.algebraic_equations.ravel()).round(4).tolist()
        (1, False, [0.7071, 0.7071])
    """

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
        """Indices of the algebraic equations of a semi-explicit ``M`` (rows of zeros)."""
        return np.flatnonzero(~self.value.any(axis=1))

    @property
    def algebraic_cols(self) -> np.ndarray:
        """Indices of the algebraic variables (columns of zeros: no derivative of them appears)."""
        return np.flatnonzero(~self.value.any(axis=0))

    @functools.cached_property
    def _null_spaces(self) -> tuple[int, np.ndarray, np.ndarray]:
        u, s, vt = np.linalg.svd(self.value.astype(np.float64))
        # Rank tolerance: NumPy's `matrix_rank` default, sigma_max * n * eps(float64): a singular value
        # below it is indistinguishable from rounding of a zero in M's entries.
        tol = (s.max() if s.size else 0.0) * self.n * np.finfo(np.float64).eps
        rank = int(np.count_nonzero(s > tol))
        return rank, u[:, rank:], vt[rank:].T

    @property
    def rank(self) -> int:
        """The numerical rank of ``M`` (singular values above ``sigma_max * n * eps``, float64)."""
        return self._null_spaces[0]

    @property
    def singular(self) -> bool:
        return self.rank < self.n

    @property
    def algebraic_equations(self) -> np.ndarray:
        """``N``, ``(n, n - rank)`` float64, an orthonormal basis of ``null(M^T)``."""
        return self._null_spaces[1]

    @property
    def algebraic_directions(self) -> np.ndarray:
        """``V0``, ``(n, n - rank)`` float64, an orthonormal basis of ``null(M)``."""
        return self._null_spaces[2]

    @property
    def semi_explicit(self) -> bool:
        """Whether the zero rows and the zero columns of ``M`` each span its ``n - rank`` null directions."""
        k = self.n - self.rank
        return len(self.algebraic_rows) == k and len(self.algebraic_cols) == k

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


class _ZeroRowsAndColumns:
    """Semi-explicit ``M``: the algebraic equations are its zero rows, ``z`` its zero columns' values."""

    def __init__(self, mass: MassMatrix):
        self.rows, self.cols = mass.algebraic_rows, mass.algebraic_cols

    def start(self, y0):
        return y0[self.cols]

    def place(self, y, z):
        return y.at[self.cols].set(z)

    def equations(self, fy):
        return fy[self.rows]

    def tolerance(self, atol):
        return _entries(atol, self.rows)

    def step(self, z_new, z, y, rtol, atol):
        """Newton's last correction as ``(dy, y, rtol, atol)`` over the algebraic variables."""
        return z_new - z, z, _entries(rtol, self.cols), _entries(atol, self.cols)


def _entries(tol, index):
    """``tol[index]`` of a per-component tolerance; a scalar one as it is."""
    return tol[index] if jnp.ndim(tol) else tol


class _NullSpaces:
    """Any singular ``M``: the algebraic equations are ``N^T f``, ``y = y0 + V0 z`` moves along ``null(M)``."""

    def __init__(self, mass: MassMatrix, dtype):
        self.N = jnp.asarray(mass.algebraic_equations.astype(dtype))       # derived data, cast as the state
        self.V0 = jnp.asarray(mass.algebraic_directions.astype(dtype))

    def start(self, y0):
        return jnp.zeros(self.V0.shape[1], y0.dtype)

    def place(self, y, z):
        return y + self.V0 @ z

    def equations(self, fy):
        return self.N.T @ fy

    def tolerance(self, atol):
        # |N|^T atol: each equation's tolerance is its rows' atol (a zero row's own atol where N = e_i)
        return jnp.abs(self.N).T @ jnp.broadcast_to(atol, self.N.shape[:1])

    def step(self, z_new, z, y, rtol, atol):
        """Newton's last correction ``V0 dz`` as ``(dy, y, rtol, atol)`` over all ``n`` components."""
        return self.V0 @ (z_new - z), self.place(y, z), rtol, atol


def _newton_converged(dy, y, rtol, atol, k: int):
    """Whether Newton's last correction ``dy`` is below `INIT_STEP` of the tolerances, or at the state's
    rounding (`INIT_ROUNDING` eps ``|y|``), in the RMS norm over the ``k`` moved directions (``dy`` is
    zero off them, so the sum over its entries divided by ``k`` is the mean over the moved ones)."""
    eps = jnp.finfo(y.dtype).eps
    scale = INIT_STEP * (atol + rtol * jnp.abs(y)) + INIT_ROUNDING * eps * jnp.abs(y)
    step = jnp.sqrt(jnp.sum(jnp.square(jnp.abs(dy) / scale)) / k)
    return jnp.isfinite(step) & (step <= 1.0)


def consistent(f, s0, y0, args, mass: MassMatrix, mode: str, rtol, atol) -> Init:
    """Make ``y0`` consistent (``mode="solve"``) or measure it (``"check"``, ``"none"``); traced.

    ``f(s, y, args)`` is the flat field, ``y0`` ``(n,)``. The algebraic equations are ``N^T f(s0, y) = 0``
    (``N`` = `MassMatrix.algebraic_equations`; the zero rows of a semi-explicit ``M``). ``"solve"`` moves
    ``y0`` along ``null(M)`` only (``y0 + V0 z``: the zero columns of a semi-explicit ``M``), so ``M y0``
    is kept, and solves them by full Newton in ``z`` (``k = n - rank`` unknowns and equations); the last
    iteration is differentiable in ``y0`` and ``args``.

    Returns an `Init`: ``y0`` (the state's dtype); ``residual``: ``max |N^T f(s0, y0)|`` at the
    returned ``y0``; ``converged``: whether the state is consistent (for ``"solve"``: Newton's last
    correction is below 1e-3 of the tolerances or at the state's rounding; for ``"check"``: every
    algebraic residual is below its ``atol``, ``|N|^T atol``, which is ``atol`` on a zero row);
    ``adjusted``: whether ``y0`` changed.
    Failure is not raised here: the caller turns ``converged=False`` into ``Status.INIT_FAILED`` or
    ``Status.INCONSISTENT_INIT``.
    """
    space = _ZeroRowsAndColumns(mass) if mass.semi_explicit else _NullSpaces(mass, y0.dtype)
    true = jnp.asarray(True)

    def g(z, y, a):
        return space.equations(f(s0, space.place(y, z), a))

    def measure(y):
        r = space.equations(f(s0, y, args))
        return jnp.max(jnp.abs(r)) if r.size else jnp.zeros((), y.real.dtype)

    if mode == "none" or mass.rank == mass.n:
        return Init(y0, measure(y0), true, jnp.asarray(False))
    if mode == "check":
        r = space.equations(f(s0, y0, args))
        return Init(y0, jnp.max(jnp.abs(r)), jnp.all(jnp.abs(r) <= space.tolerance(atol)), jnp.asarray(False))

    def newton(z, y, a):
        J = jax.jacfwd(g, holomorphic=bool(jnp.iscomplexobj(z)))(z, y, a)   # a complex state: f holomorphic
        return z - jnp.linalg.solve(J, g(z, y, a))

    z0 = space.start(y0)
    z = lax.fori_loop(0, INIT_ITER - 1, lambda _, z: newton(z, *lax.stop_gradient((y0, args))),
                      lax.stop_gradient(z0))
    z = lax.stop_gradient(z)
    z_last = newton(z, y0, args)         # differentiable: the implicit function's derivative at the root
    converged = _newton_converged(*space.step(z_last, z, y0, rtol, atol), k=z.shape[0])
    y_new = space.place(y0, z_last)
    return Init(y_new, measure(y_new), converged, jnp.any(y_new != y0))
