"""Butcher's rooted trees and the order conditions that `ButcherTableau` checks when it is built.

Order conditions (Butcher): ``sum_i b_i Phi_i(t) = 1/gamma(t)`` for every rooted tree ``t`` with
``rho(t) <= order``, where ``Phi(tau) = 1`` and ``Phi([t_1, ..., t_m]) = prod_k (A Phi(t_k))``
elementwise. A continuous extension of order ``q`` satisfies ``sum_i b_i(theta) Phi_i(t) =
theta**rho(t) / gamma(t)`` for ``rho(t) <= q``; it is checked coefficient by coefficient in theta.
Hairer, Norsett & Wanner, *Solving ODEs I*, 2nd ed., Sections II.2 and II.6. The stiff tableaus
(``_stiff_tableau.py``) check their own conditions over the same trees.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple, NoReturn, Sequence

import numpy as np

# A residual must be below _RTOL times its rounding-error scale (sum of |terms|, with |A| in the
# inner sums). Decimal tables published to 16+ digits satisfy their conditions to ~1e-16 of that
# scale; a coefficient wrong in any of its first 9 significant digits fails.
_RTOL = 1e-12
_TINY = np.finfo(np.float64).tiny


class RootedTree(NamedTuple):
    """A rooted tree as used by Butcher series.

    ``children`` are indices into the tuple returned by `rooted_trees`; ``order`` is the number of
    nodes rho(t), ``gamma`` the density gamma(t), ``label`` a bracket notation (``τ``, ``[τ]``,
    ``[τ,τ]``, ``[[τ]]``, ...).
    """

    order: int
    children: tuple[int, ...]
    gamma: int
    label: str


@functools.lru_cache(maxsize=None)
def rooted_trees(max_order: int) -> tuple[RootedTree, ...]:
    """All rooted trees with at most ``max_order`` nodes, by increasing order.

    There are 1, 1, 2, 4, 9, 20, 48, 115, 286 trees of order 1..9 (OEIS A000081). A tree is its
    root plus a multiset of subtrees; multisets are enumerated with non-increasing child indices so
    that each tree appears once.
    """
    trees: list[RootedTree] = [RootedTree(1, (), 1, "τ")] if max_order >= 1 else []

    def forests(total: int, max_index: int):
        # Multisets of trees (indices <= max_index, non-increasing) whose orders add up to `total`.
        if total == 0:
            yield ()
            return
        for i in range(max_index, -1, -1):
            if trees[i].order <= total:
                for rest in forests(total - trees[i].order, i):
                    yield (i,) + rest

    for order in range(2, max_order + 1):
        known = len(trees)  # trees of order < `order`
        for children in forests(order - 1, known - 1):
            gamma = order
            for child in children:
                gamma *= trees[child].gamma
            label = "[" + ",".join(trees[child].label for child in children) + "]"
            trees.append(RootedTree(order, children, gamma, label))
    return tuple(trees)


def _elementary_weights(
    a: np.ndarray, trees: Sequence[RootedTree]
) -> tuple[np.ndarray, np.ndarray]:
    """Phi_i(t) for every stage i and tree t, and the same computed with |A| (the rounding scale).

    Returns two arrays of shape (len(trees), n_stages).
    """
    n = a.shape[0]
    abs_a = np.abs(a)
    phi = np.empty((len(trees), n))
    phi_abs = np.empty((len(trees), n))
    a_phi = np.empty((len(trees), n))
    abs_a_phi = np.empty((len(trees), n))
    for index, tree in enumerate(trees):
        value = np.ones(n)
        scale = np.ones(n)
        for child in tree.children:
            value = value * a_phi[child]
            scale = scale * abs_a_phi[child]
        phi[index], phi_abs[index] = value, scale
        a_phi[index] = a @ value
        abs_a_phi[index] = abs_a @ scale
    return phi, phi_abs


def check_order_conditions(tableau, fail: Callable[[str], NoReturn]) -> None:
    """Check the order conditions of a `ButcherTableau`; ``fail(message)`` raises for the first broken one.

    The propagated solution, each embedded estimator and the dense output must satisfy their conditions
    up to their declared orders, and not all of those one order higher (so a declared order is the true
    one). ``tableau`` is not annotated: `_tableau` imports this module, not the other way round.
    """
    degree = tableau.dense_degree
    highest = max(tableau.order, tableau.dense_order or 0) + 1
    trees = rooted_trees(highest)
    phi, phi_abs = _elementary_weights(tableau.A_all, trees)
    s = tableau.stages

    def check(weights, upto, what):
        # Conditions up to order `upto` must hold, and not all of those of order upto + 1.
        worst_next = 0.0
        for index, tree in enumerate(trees):
            if tree.order > upto + 1:
                break
            got = float(weights @ phi[index, :s])
            expected = 1.0 / tree.gamma
            scale = float(np.abs(weights) @ phi_abs[index, :s]) + expected
            ratio = abs(got - expected) / scale
            if tree.order <= upto and ratio > _RTOL:
                fail(f"{what} for tree {tree.label} (order {tree.order}): got {got:.17g} "
                     f"expected {expected:.17g} (1/{tree.gamma}). A coefficient is "
                     f"mistyped; check it against the source "
                     f"({tableau.source or 'not given'}).")
            if tree.order == upto + 1:
                worst_next = max(worst_next, ratio)
        if worst_next <= 1e3 * _RTOL:
            fail(f"{what}s of order {upto + 1} hold as well; the declared order {upto} "
                 f"understates the method. Raise it.")

    b = tableau.B
    check(b, tableau.order, "order condition")
    if tableau.b_err is not None:
        check(b - tableau.B_err, tableau.error_order, "embedded order condition (b - b_err)")
    if tableau.b_err3 is not None:
        check(b - tableau.B_err3, 3, "3rd-order estimator condition (b - b_err3)")
    if tableau.b_dense is None:
        return
    dense = tableau.B_dense
    # Consistency: b_i(1) == b_i for the main stages, 0 for the extra ones.
    target = np.concatenate([b, np.zeros(tableau.extra_stages)])
    at_one = dense.sum(axis=1)
    for i in range(len(target)):
        if abs(at_one[i] - target[i]) > _RTOL * (np.abs(dense[i]).sum() + abs(target[i])):
            fail(f"dense output is inconsistent at theta=1: b_{i}(1) = "
                 f"sum(b_dense[{i}]) = {at_one[i]:.17g} but it must equal the step "
                 f"weight {target[i]:.17g}.")
    worst_next = 0.0
    for index, tree in enumerate(trees):
        if tree.order > tableau.dense_order + 1:
            break
        got = dense.T @ phi[index]                              # coefficient of theta**j
        scale = np.abs(dense.T) @ phi_abs[index]
        if tree.order > degree:  # theta**rho / gamma is out of reach of the polynomials
            if tree.order <= tableau.dense_order:
                fail(f"`dense_order={tableau.dense_order}` needs polynomials of degree >= "
                     f"{tableau.dense_order}; `b_dense` has degree {degree}.")
            worst_next = np.inf
            continue
        expected = np.zeros(degree)
        expected[tree.order - 1] = 1.0 / tree.gamma
        ratio = np.abs(got - expected) / np.maximum(scale + np.abs(expected), _TINY)
        if tree.order <= tableau.dense_order and ratio.max() > _RTOL:
            j = int(ratio.argmax())
            fail(f"dense-output condition for tree {tree.label} (order {tree.order}), "
                 f"coefficient of theta**{j + 1}: got {got[j]:.17g} expected "
                 f"{expected[j]:.17g}. A coefficient is mistyped; check it against the "
                 f"source ({tableau.source or 'not given'}).")
        if tree.order == tableau.dense_order + 1:
            worst_next = max(worst_next, float(ratio.max()))
    if worst_next <= 1e3 * _RTOL:
        fail(f"dense-output conditions of order {tableau.dense_order + 1} hold as well; "
             f"the declared `dense_order={tableau.dense_order}` understates it. Raise it.")
