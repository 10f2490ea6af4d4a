"""`ButcherTableau`: the coefficients of an explicit Runge-Kutta method, checked when built.

A tableau is data. `ButcherTableau.__post_init__` checks the row sums, the order conditions of the
propagated and the embedded solution, the FSAL flag and the continuous extension against rooted
trees (``_order_conditions.py``), so that a mistyped coefficient fails at import rather than as a
silently lower order.

The tables themselves are data modules, one per family (``_tableaus_classic.py``,
``_tableaus_dormand_prince.py``, ``_tableaus_tsitouras.py``, ``_tableaus_verner.py``), each table with
its source. Rationals are written as ``p / q`` of Python ints, which Python rounds correctly to
float64; irrational coefficients are written with all the digits their source gives (Python rounds
decimal literals correctly as well).

Conventions (the integration loop relies on them):

* Stages: ``k_i = f(t0 + c_i h, y0 + h sum_{j<i} a_ij k_j)`` for the ``s`` main stages, then the
  extra (dense-output) stages ``k_{s+r}`` with node ``c_extra[r]`` and row ``a_extra[r]`` over the
  ``s + r`` stages before it.
* Step: ``y1 = y0 + h sum_i b_i k_i``.
* Error estimate: ``h sum_i b_err_i k_i`` with ``b_err = b - b_hat``, where ``b_hat`` is the
  embedded solution of order ``error_order``.
* Dense output: ``y(t0 + theta h) = y0 + h sum_i b_i(theta) k_i`` over all ``s + len(c_extra)``
  stages, ``b_i(theta) = sum_{j=1..degree} b_dense[i][j-1] theta**j``.
* A method whose dense output needs ``f(t1, y1)`` but is not FSAL makes that the first extra stage
  (``c_extra[0] == 1``, ``a_extra[0] == b``); `ButcherTableau.first_extra_is_f1` reports it, and the
  loop reuses the ``f(t1, y1)`` that it computes anyway as the next step's ``k_1``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

import numpy as np

from sciml.solvers._order_conditions import check_order_conditions

# Row sums c_i = sum_j a_ij involve a single sum, so they are held tighter than the order
# conditions (1e-12 of their rounding scale, see ``_order_conditions.py``).
_ROW_RTOL = 1e-14


def hairer_dense_output(
    b: Sequence[float], d: Sequence[Sequence[float]], f1_stage: int
) -> tuple[tuple[float, ...], ...]:
    """`ButcherTableau.b_dense` rows from the dense-output form of Hairer's DOPRI5 and DOP853 codes.

    ``contd5`` (dopri5.f) and ``contd8`` (dop853.f) evaluate

        y(t0 + theta h) = y0 + theta (F0 + (1-theta) (F1 + theta (F2 + (1-theta) (F3 + ...))))

    with ``F0 = y1 - y0``, ``F1 = h k_1 - F0``, ``F2 = 2 F0 - h (k_1 + f(t1, y1))`` and
    ``F_{3+m} = h sum_i d[m][i] k_i``. Everything is linear in the stages, so this is
    ``y0 + h sum_i b_i(theta) k_i``; the expansion is done in exact rational arithmetic on the given
    floats and rounded once.

    Args:
        b: step weights over the first ``len(b)`` stages (padded with zeros to ``len(d[0])``).
        d: Hairer's ``d`` coefficients, one row per ``F_3, F_4, ...``, over all stages.
        f1_stage: index of the stage that is ``f(t1, y1)``.

    Returns:
        One row per stage, ``3 + len(d)`` coefficients (of theta**1 .. theta**(3 + len(d))).
    """
    n = len(d[0])
    bq = [Fraction(x) for x in b] + [Fraction(0)] * (n - len(b))
    first = [Fraction(int(i == 0)) for i in range(n)]
    f1 = [Fraction(int(i == f1_stage)) for i in range(n)]
    weights = [
        bq,
        [e - x for e, x in zip(first, bq)],
        [2 * x - e - g for x, e, g in zip(bq, first, f1)],
    ] + [[Fraction(x) for x in row] for row in d]
    # The factor in front of F_m: theta, theta (1-theta), theta**2 (1-theta), theta**2 (1-theta)**2,
    # ... as coefficient lists of theta**0, theta**1, ...
    factors: list[list[Fraction]] = []
    poly = [Fraction(0), Fraction(1)]
    for m in range(len(weights)):
        if m > 0:  # odd levels bring a factor (1 - theta), even ones a factor theta
            times_theta = [Fraction(0)] + poly
            if m % 2:
                poly = [p - q for p, q in zip(poly + [Fraction(0)], times_theta)]
            else:
                poly = times_theta
        factors.append(poly)
    rows = []
    for i in range(n):
        coeffs = [Fraction(0)] * (len(weights) + 1)
        for w, factor in zip(weights, factors):
            for j, f in enumerate(factor):
                coeffs[j] += w[i] * f
        rows.append(tuple(float(x) for x in coeffs[1:]))
    return tuple(rows)


def _as_vector(value, what: str, name: str) -> tuple[float, ...]:
    try:
        out = tuple(float(x) for x in value)
    except TypeError as exc:
        raise ValueError(f"`ButcherTableau` {name!r}: `{what}` must be a sequence of numbers; "
                         f"got {value!r}.") from exc
    if not all(np.isfinite(out)):
        raise ValueError(f"`ButcherTableau` {name!r}: `{what}` has a non-finite entry: {out!r}.")
    return out


def _as_rows(value, what: str, name: str) -> tuple[tuple[float, ...], ...]:
    return tuple(_as_vector(row, f"{what}[{i}]", name) for i, row in enumerate(value))


@dataclass(frozen=True, repr=False)
class ButcherTableau:
    """An explicit Runge-Kutta method: coefficients, embedded pair and continuous extension.

    Fields (tuples of Python floats; lists, ints and `fractions.Fraction` are converted):

    * ``name``: used in error messages.
    * ``c`` (s,), ``a`` (s rows, row i has i entries: row 0 is ``()``), ``b`` (s,), ``order``.
    * ``b_err`` (s,): error weights, local error estimate ``h sum_i b_err_i k_i``,
      ``b_err = b - b_hat`` with ``b_hat`` of order ``error_order``. ``None``: fixed step only.
    * ``fsal``: True iff ``c[-1] == 1``, ``a[-1] == b[:-1]`` and ``b[-1] == 0``, i.e. the last stage
      is ``f(t1, y1)`` and is the next step's first stage.
    * ``c_extra``, ``a_extra``: extra stages evaluated only for dense output; ``a_extra[r]`` has
      ``s + r`` entries (the main stages, then the earlier extra stages).
    * ``b_dense`` (s + len(c_extra) rows, ``degree`` columns): ``b_i(theta) = sum_j b_dense[i][j-1]
      theta**j``, an extension of order ``dense_order``. ``None``: the loop uses cubic Hermite.
    * ``source``: the citation.
    * ``b_err3`` (s,): a second, 3rd-order error estimator ``b - b_hat3`` for methods whose
      controller combines two estimators (DOP853: ``err = |e5|**2 / sqrt(|e5|**2 + 0.01 |e3|**2)``
      with ``e5``, ``e3`` the norms of ``h sum b_err k`` and ``h sum b_err3 k``; this behaves like
      h**8, so the step-size exponent is 1/8, scipy's ``error_estimator_order = 7``).
    """

    name: str
    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    order: int
    b_err: tuple[float, ...] | None = None
    error_order: int | None = None
    fsal: bool = False
    c_extra: tuple[float, ...] = ()
    a_extra: tuple[tuple[float, ...], ...] = ()
    b_dense: tuple[tuple[float, ...], ...] | None = None
    dense_order: int | None = None
    source: str = ""
    b_err3: tuple[float, ...] | None = None

    # ---------------------------------------------------------------- construction and checks

    def __post_init__(self):
        name = self.name
        set_ = functools.partial(object.__setattr__, self)
        set_("c", _as_vector(self.c, "c", name))
        set_("a", _as_rows(self.a, "a", name))
        set_("b", _as_vector(self.b, "b", name))
        set_("c_extra", _as_vector(self.c_extra, "c_extra", name))
        set_("a_extra", _as_rows(self.a_extra, "a_extra", name))
        for field in ("b_err", "b_err3"):
            if getattr(self, field) is not None:
                set_(field, _as_vector(getattr(self, field), field, name))
        if self.b_dense is not None:
            set_("b_dense", _as_rows(self.b_dense, "b_dense", name))
        self._check_shapes()
        self._check_row_sums()
        self._check_fsal()
        check_order_conditions(self, self._fail)

    def _fail(self, message: str):
        raise ValueError(f"`ButcherTableau` {self.name!r}: {message}")

    def _check_shapes(self):
        s, m = len(self.c), len(self.c_extra)
        if s == 0:
            self._fail("`c` is empty; a Runge-Kutta method has at least one stage.")
        for field in ("a", "b"):
            if len(getattr(self, field)) != s:
                self._fail(f"`{field}` has {len(getattr(self, field))} entries but `c` has {s} "
                           f"stages; give one per stage.")
        for i, row in enumerate(self.a):
            if len(row) != i:
                self._fail(f"`a[{i}]` has {len(row)} entries; an explicit method's row i has "
                           f"exactly i (a[i][0..i-1]), row 0 is ().")
        if len(self.a_extra) != m:
            self._fail(f"`a_extra` has {len(self.a_extra)} rows but `c_extra` has {m} nodes.")
        for r, row in enumerate(self.a_extra):
            if len(row) != s + r:
                self._fail(f"`a_extra[{r}]` has {len(row)} entries; extra stage {r} needs "
                           f"s + {r} = {s + r} (the main stages, then the earlier extra stages).")
        if not isinstance(self.order, int) or self.order < 1:
            self._fail(f"`order` must be a positive int; got {self.order!r}.")
        if (self.b_err is None) != (self.error_order is None):
            self._fail("`b_err` and `error_order` go together: give both or neither.")
        if self.b_err is not None:
            if len(self.b_err) != s:
                self._fail(f"`b_err` has {len(self.b_err)} entries; give one per stage ({s}).")
            if not isinstance(self.error_order, int) or not 1 <= self.error_order < self.order:
                self._fail(f"`error_order` must be an int in [1, order={self.order}); got "
                           f"{self.error_order!r}.")
        if self.b_err3 is not None:
            if self.b_err is None:
                self._fail("`b_err3` is a second estimator and needs `b_err`.")
            if len(self.b_err3) != s:
                self._fail(f"`b_err3` has {len(self.b_err3)} entries; give one per stage ({s}).")
            if self.order <= 3:
                self._fail(f"`b_err3` is a 3rd-order estimator; it needs `order` > 3, got "
                           f"{self.order}.")
        if (self.b_dense is None) != (self.dense_order is None):
            self._fail("`b_dense` and `dense_order` go together: give both or neither.")
        if self.b_dense is None:
            if m:
                self._fail("`c_extra`/`a_extra` are only used for dense output; `b_dense` is None.")
            return
        if len(self.b_dense) != s + m:
            self._fail(f"`b_dense` has {len(self.b_dense)} rows; give one per stage, "
                       f"s + len(c_extra) = {s + m}.")
        degree = len(self.b_dense[0])
        if degree == 0 or any(len(row) != degree for row in self.b_dense):
            self._fail(f"`b_dense` rows must all have the same, positive length (the degree); "
                       f"got lengths {sorted({len(row) for row in self.b_dense})}.")
        if not isinstance(self.dense_order, int) or not 1 <= self.dense_order <= self.order:
            self._fail(f"`dense_order` must be an int in [1, order={self.order}]; got "
                       f"{self.dense_order!r}.")

    def _check_row_sums(self):
        a, c = self.A_all, self.C_all
        residual = a.sum(axis=1) - c
        scale = np.abs(a).sum(axis=1) + np.abs(c)
        for i in range(len(c)):
            if abs(residual[i]) > _ROW_RTOL * max(scale[i], 1.0):
                stage = (f"a[{i}]" if i < self.stages else f"a_extra[{i - self.stages}]")
                node = (f"c[{i}]" if i < self.stages else f"c_extra[{i - self.stages}]")
                self._fail(f"row sum of `{stage}` is {a[i].sum():.17g} but `{node}` = {c[i]:.17g}; "
                           f"they must agree (c_i = sum_j a_ij). A coefficient is mistyped; check "
                           f"it against the source ({self.source or 'not given'}).")

    def _check_fsal(self):
        structural = (self.c[-1] == 1.0 and self.b[-1] == 0.0
                      and self.a[-1] == self.b[:-1])
        if self.fsal and not structural:
            self._fail("`fsal=True` needs the last stage to be f(t1, y1): c[-1] == 1, "
                       "a[-1] == b[:-1] and b[-1] == 0 exactly.")
        if structural and not self.fsal:
            self._fail("the last stage is f(t1, y1) (c[-1] == 1, a[-1] == b[:-1], b[-1] == 0) "
                       "but `fsal=False`; set `fsal=True` so the loop reuses it.")

    # ---------------------------------------------------------------- derived views

    def __repr__(self) -> str:
        pair = f"{self.order}({self.error_order})" if self.b_err is not None else f"{self.order}"
        extras = [f"stages={self.stages}", f"order={pair}"]
        if self.fsal:
            extras.append("fsal")
        if self.b_dense is not None:
            extras.append(f"dense_order={self.dense_order} (+{self.extra_stages} extra stages)")
        return f"ButcherTableau({self.name!r}, {', '.join(extras)})"

    @property
    def stages(self) -> int:
        """s, the number of main stages (FSAL stage included)."""
        return len(self.c)

    @property
    def extra_stages(self) -> int:
        """The number of stages evaluated only for dense output."""
        return len(self.c_extra)

    @property
    def dense_degree(self) -> int:
        """Degree of the dense-output polynomials in theta (0 when there are none)."""
        return 0 if self.b_dense is None else len(self.b_dense[0])

    @property
    def first_extra_is_f1(self) -> bool:
        """Whether extra stage 0 is f(t1, y1) (c_extra[0] == 1 and a_extra[0] == b, exactly)."""
        return bool(self.c_extra) and self.c_extra[0] == 1.0 and self.a_extra[0] == self.b

    @functools.cached_property
    def A(self) -> np.ndarray:
        """The (s, s) strictly lower-triangular matrix a, float64, read-only."""
        return _frozen(self.A_all[: self.stages, : self.stages])

    @functools.cached_property
    def A_all(self) -> np.ndarray:
        """(s + m, s + m) matrix of main then extra stages (m = `extra_stages`), read-only."""
        n = self.stages + self.extra_stages
        out = np.zeros((n, n))
        for i, row in enumerate(self.a + self.a_extra):
            out[i, : len(row)] = row
        return _frozen(out)

    @functools.cached_property
    def C(self) -> np.ndarray:
        """(s,) nodes, float64, read-only."""
        return _frozen(np.array(self.c))

    @functools.cached_property
    def C_all(self) -> np.ndarray:
        """(s + m,) nodes of main and extra stages, float64, read-only."""
        return _frozen(np.array(self.c + self.c_extra))

    @functools.cached_property
    def B(self) -> np.ndarray:
        """(s,) weights of the propagated solution, float64, read-only."""
        return _frozen(np.array(self.b))

    @functools.cached_property
    def B_err(self) -> np.ndarray | None:
        """(s,) error weights b - b_hat, float64, read-only; None without an embedded pair."""
        return None if self.b_err is None else _frozen(np.array(self.b_err))

    @functools.cached_property
    def B_err3(self) -> np.ndarray | None:
        """(s,) weights of the second (3rd-order) estimator, float64, read-only; or None."""
        return None if self.b_err3 is None else _frozen(np.array(self.b_err3))

    @functools.cached_property
    def B_dense(self) -> np.ndarray | None:
        """(s + m, degree) dense-output coefficients, float64, read-only; or None.

        ``y(t0 + theta h) = y0 + h * K.T @ B_dense @ [theta, theta**2, ..., theta**degree]`` with K
        the (s + m, n) stacked stages.
        """
        return None if self.b_dense is None else _frozen(np.array(self.b_dense))


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.array(array, dtype=np.float64)
    array.flags.writeable = False
    return array
