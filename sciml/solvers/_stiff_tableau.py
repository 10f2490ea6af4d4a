"""Tableaus of the one-step stiff methods, checked against their order conditions when built.

As with `ButcherTableau` (``_tableau.py``), a mistyped coefficient fails at import, not as a silently
lower order. Both checks use the rooted trees of ``_order_conditions.py``: a method has order ``p`` when
``sum_i b_i Phi_i(t) = 1 / gamma(t)`` for every tree with at most ``p`` nodes.

* ESDIRK (`ESDIRKTableau`): a Runge-Kutta method with a lower-triangular ``A`` (explicit first stage,
  the same ``gamma`` on the rest of the diagonal); ``Phi([t_1, ..., t_m]) = prod_k A Phi(t_k)``.
* Rosenbrock (`RosenbrockTableau`): Hairer & Wanner, *Solving ODEs II*, Sec. IV.7. In the form the
  codes use (eq. 7.25, ``u_i = sum_j gamma_ij k_j``), one step is

      (I/(h gamma) - J) u_i = f(t + c_i h, y + sum_j a_ij u_j) + sum_j (C_ij / h) u_j + h d_i df/dt
      y1 = y + sum_j m_j u_j,      error estimate sum_j m_err_j u_j

  With ``Gamma = (diag(1/gamma) - C)^{-1}`` the classical coefficients are ``alpha = a Gamma``,
  ``b = m Gamma``. A vertex with one child carries ``beta = alpha + Gamma`` (the ``J`` term is linear),
  one with several children ``alpha`` (Table 7.1 there); ``c = alpha 1`` and ``d = Gamma 1``. The dense
  output ``y(t + theta h) = y + sum_p theta**p sum_j P[p][j] u_j`` is checked coefficient by
  coefficient in theta up to ``dense_order``.
* Rosenbrock-W (``w_method=True``): the same step with any matrix ``A`` in place of ``J`` keeps its
  order (Hairer & Wanner IV.7, "W-methods"; Steinebach's and Rang's tables use the same trees). The
  ``A`` terms are linear, so the trees gain a second kind of vertex with exactly one child, weighted
  by ``Gamma`` where the ``f'`` vertices take ``alpha``: a tree without such a vertex must give
  ``1 / gamma(t)``, every tree with one must give 0 (the ``J``-form's ``beta = alpha + Gamma`` sums
  both colourings).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sciml.solvers._order_conditions import rooted_trees

# A residual must be below _RTOL times its rounding scale (the same sums with absolute values).
_RTOL = 1e-12


def _square(rows, s: int, diagonal=None) -> np.ndarray:
    """A lower-triangular ``(s, s)`` matrix from rows of increasing length (row i: i or i+1 entries)."""
    out = np.zeros((s, s))
    for i, row in enumerate(rows):
        out[i, :len(row)] = row
    if diagonal is not None:
        out[np.arange(s), np.arange(s)] = diagonal
    return out


def _weights(single: np.ndarray, multi: np.ndarray, max_order: int):
    """``Phi_i(t)`` (and the same with absolute values) for every tree; one-child vertices use
    ``single``, vertices with several children ``multi``."""
    trees = rooted_trees(max_order)
    phi, phi_abs = [], []
    for tree in trees:
        value, scale = np.ones(single.shape[0]), np.ones(single.shape[0])
        if len(tree.children) == 1:
            (child,) = tree.children
            value, scale = single @ phi[child], np.abs(single) @ phi_abs[child]
        else:
            for child in tree.children:
                value = value * (multi @ phi[child])
                scale = scale * (np.abs(multi) @ phi_abs[child])
        phi.append(value)
        phi_abs.append(scale)
    return trees, phi, phi_abs


def _order_reached(b, single, multi, max_order: int) -> int:
    """The largest ``p <= max_order`` for which every order condition up to ``p`` holds."""
    trees, phi, phi_abs = _weights(single, multi, max_order)
    reached = max_order
    for tree, value, scale in zip(trees, phi, phi_abs):
        residual = abs(b @ value - 1.0 / tree.gamma)
        if residual > _RTOL * (np.abs(b) @ scale + 1.0 / tree.gamma):
            reached = min(reached, tree.order - 1)
    return reached


def _w_order_reached(b, alpha, Gamma, max_order: int) -> int:
    """`_order_reached` for a W-method: every colouring of the one-child vertices (``f'``: ``alpha``,
    ``A``: ``Gamma``); a colouring with an ``A`` vertex must vanish."""
    trees = rooted_trees(max_order)
    colourings = []          # per tree: (Phi, |Phi| scale, has an A vertex) for every colouring
    for tree in trees:
        if len(tree.children) == 1:
            (child,) = tree.children
            options = [(M @ v, np.abs(M) @ sc, has_a or is_a) for v, sc, has_a in colourings[child]
                       for M, is_a in ((alpha, False), (Gamma, True))]
        else:
            options = [(np.ones(alpha.shape[0]), np.ones(alpha.shape[0]), False)]
            for child in tree.children:
                options = [(v * (alpha @ cv), sc * (np.abs(alpha) @ csc), h or ch) for v, sc, h in options
                           for cv, csc, ch in colourings[child]]
        colourings.append(options)
    reached = max_order
    for tree, options in zip(trees, colourings):
        for value, scale, has_a in options:
            wanted = 0.0 if has_a else 1.0 / tree.gamma
            if abs(b @ value - wanted) > _RTOL * (np.abs(b) @ scale + 1.0 / tree.gamma):
                reached = min(reached, tree.order - 1)
    return reached


def _check(name: str, what: str, got: int, wanted: int):
    if got < wanted:
        raise ValueError(f"tableau {name!r}: `{what}` satisfies the order conditions only up to order {got}, "
                         f"not {wanted}; a coefficient is mistyped.")


def _check_close(name: str, what: str, got, wanted):
    if not np.allclose(got, wanted, rtol=1e-13, atol=1e-13):
        raise ValueError(f"tableau {name!r}: `{what}` is {np.asarray(got).tolist()}, but the coefficients give "
                         f"{np.asarray(wanted).tolist()}.")


@dataclass(frozen=True, repr=False)
class ESDIRKTableau:
    """An ESDIRK method: explicit first stage, diagonal ``gamma``, stiffly accurate (``b`` is the last
    row of ``a``). ``a`` rows exclude the diagonal; ``b_err = b - b_hat`` with ``b_hat`` of order
    ``error_order``; ``predictor`` rows give each stage's Newton starting value from the earlier ones."""

    name: str
    gamma: float
    a: tuple
    c: tuple
    b_err: tuple
    predictor: tuple
    order: int
    error_order: int
    source: str

    def __post_init__(self):
        s = len(self.c)
        A = _square(self.a, s, diagonal=[0.0] + [self.gamma] * (s - 1))
        b = A[-1]
        _check_close(self.name, "c", self.c, A.sum(axis=1))
        _check(self.name, "b", _order_reached(b, A, A, self.order), self.order)
        _check(self.name, "b - b_err", _order_reached(b - np.asarray(self.b_err), A, A, self.error_order),
               self.error_order)

    @property
    def stages(self) -> int:
        return len(self.c)

    @property
    def a_matrix(self) -> np.ndarray:
        """``a`` as an ``(s, s)`` strictly lower-triangular matrix (the diagonal ``gamma`` excluded)."""
        return _square(self.a, self.stages)

    @property
    def predictor_matrix(self) -> np.ndarray:
        return _square(self.predictor, self.stages)


@dataclass(frozen=True, repr=False)
class RosenbrockTableau:
    """A Rosenbrock method in the ``u`` form above. ``a``, ``C``: strictly lower rows (row i has i
    entries); ``c``, ``d``, ``m`` over the stages; ``m_err`` (``None``: the method estimates its
    error its own way); ``dense`` (``None``: Hermite): rows ``P[1..]`` of the dense output.
    ``w_method``: the orders hold with any approximation of ``J`` (checked as such), so a Jacobian may
    serve several steps."""

    name: str
    gamma: float
    a: tuple
    C: tuple
    c: tuple
    d: tuple
    m: tuple
    m_err: tuple | None
    order: int
    error_order: int | None
    source: str
    dense: tuple | None = None
    dense_order: int = 0
    w_method: bool = False

    def __post_init__(self):
        s = len(self.c)
        Gamma = np.linalg.inv(np.diag(np.full(s, 1.0 / self.gamma)) - _square(self.C, s))
        alpha = _square(self.a, s) @ Gamma
        beta = alpha + Gamma
        _check_close(self.name, "c", self.c, alpha.sum(axis=1))
        _check_close(self.name, "d", self.d, Gamma.sum(axis=1))
        m = np.asarray(self.m)
        _check(self.name, "m", _order_reached(m @ Gamma, beta, alpha, self.order), self.order)
        if self.m_err is not None:
            got = _order_reached((m - np.asarray(self.m_err)) @ Gamma, beta, alpha, self.error_order)
            _check(self.name, "m - m_err", got, self.error_order)
        if self.w_method:
            _check(self.name, "m (W-method)", _w_order_reached(m @ Gamma, alpha, Gamma, self.order), self.order)
            if self.m_err is not None:
                got = _w_order_reached((m - np.asarray(self.m_err)) @ Gamma, alpha, Gamma, self.error_order)
                _check(self.name, "m - m_err (W-method)", got, self.error_order)
        if self.dense is not None:
            self._check_dense(Gamma, beta, alpha)

    def _check_dense(self, Gamma, beta, alpha):
        trees, phi, _ = _weights(beta, alpha, self.dense_order)
        rows = np.asarray(self.dense) @ Gamma          # theta**1, theta**2, ... in the classical form
        for tree, value in zip(trees, phi):
            for p, row in enumerate(rows, start=1):
                wanted = (1.0 / tree.gamma) if p == tree.order else 0.0
                if abs(row @ value - wanted) > 1e-10 * (1 + np.abs(row) @ np.abs(value)):
                    raise ValueError(f"tableau {self.name!r}: the dense output is not of order "
                                     f"{self.dense_order} (tree {tree.label}, theta**{p}).")

    @property
    def stages(self) -> int:
        return len(self.c)
