"""Sparse regression for :mod:`sciml.discovery`: which few library terms explain the targets.

:func:`stlsq` is the sequentially thresholded least squares of SINDy (Brunton et al. 2016);
:func:`candidate_supports` sweeps its threshold and adds the nested supports of greedy forward
selection, which stays reliable when the library's columns are nearly collinear along one trajectory;
:func:`masked_lstsq` fits the coefficients of one support. All in float64 NumPy.
"""

from __future__ import annotations

import numpy as np


def stlsq(theta, targets, threshold: float, *, ridge: float = 0.0, normalize: bool = True,
          max_iter: int = 25) -> np.ndarray:
    """Sequentially thresholded least squares (SINDy): ``targets ~ theta @ coefficients``, sparse.

    Solve least squares, zero every coefficient smaller than ``threshold``, solve again on the terms
    left, and repeat until the support stops changing.

    Args:
        theta: library matrix, shape ``(m, p)``.
        targets: shape ``(m, q)`` (or ``(m,)``).
        threshold: coefficients below this magnitude are dropped (on normalised columns if
            ``normalize``, i.e. relative to each term's root-mean-square size).
        ridge: Tikhonov weight (times ``m``) that steadies the solves when columns are collinear.
        normalize: scale each column of ``theta`` to unit root-mean-square first.
        max_iter: bound on the threshold-and-refit rounds.

    Returns:
        The coefficients, shape ``(p, q)``, in the units of the unnormalised ``theta``.

    Example:
        >>> import numpy as np
        >>> from sciml.discovery import stlsq
        >>> x = np.linspace(-1, 1, 50)
        >>> theta = np.stack([np.ones_like(x), x, x ** 2], axis=1)
        >>> stlsq(theta, 3 * x ** 2 - 0.5, threshold=0.1).round(6).ravel().tolist()
        [-0.5, 0.0, 3.0]
    """
    theta, targets = np.asarray(theta, np.float64), np.asarray(targets, np.float64)
    column = targets.ndim == 1
    targets = targets[:, None] if column else targets
    scale = np.sqrt(np.mean(theta ** 2, axis=0)) if normalize else np.ones(theta.shape[1])
    scale = np.where(scale > 0, scale, 1.0)
    a = theta / scale
    coef = np.stack([_lstsq(a, targets[:, j], ridge) for j in range(targets.shape[1])], axis=1)
    support = np.ones_like(coef, dtype=bool)
    for _ in range(max_iter):
        new = np.abs(coef) >= threshold
        if np.array_equal(new, support):
            break
        support = new
        coef = np.zeros_like(coef)
        for j in range(targets.shape[1]):
            if support[:, j].any():
                coef[support[:, j], j] = _lstsq(a[:, support[:, j]], targets[:, j], ridge)
    coef = coef / scale[:, None]
    return coef[:, 0] if column else coef


#: A regression residual below this fraction of the target's norm is an exact fit: far above float64
#: rounding (1e-16 times the library's condition number), far below any term worth finding.
_EXACT_FIT = 1e-10


def _lstsq(a, b, ridge):
    if ridge:
        return np.linalg.solve(a.T @ a + ridge * a.shape[0] * np.eye(a.shape[1]), a.T @ b)
    return np.linalg.lstsq(a, b, rcond=None)[0]


def _forward_path(a, b, max_terms):
    """Greedy forward selection: the nested supports of 1, 2, ... terms, each adding the term that
    lowers the least-squares residual most.

    The path stops once ``b`` is fitted exactly (to ``_EXACT_FIT`` of its norm): past that point every
    term leaves a residual of rounding size, so which one is "lowest" would be decided by the order of
    the floating-point sums (the machine's BLAS kernel), not by the data.
    """
    chosen, path = [], []
    left, exact = b @ b, _EXACT_FIT ** 2 * (b @ b)
    for _ in range(min(max_terms, a.shape[1])):
        if left <= exact:
            break
        best, best_rss = None, np.inf
        for k in set(range(a.shape[1])) - set(chosen):
            cols = chosen + [k]
            rss = np.sum((a[:, cols] @ _lstsq(a[:, cols], b, 0.0) - b) ** 2)
            if rss < best_rss:
                best, best_rss = k, rss
        chosen.append(best)
        path.append(frozenset(chosen))
        left = best_rss
    return path


def candidate_supports(theta, targets, thresholds, ridge, max_terms):
    """Per equation (column of ``targets``), the supports (frozensets of library columns) of at most
    ``max_terms`` terms found by :func:`stlsq` at each of ``thresholds`` and by forward selection,
    smallest first."""
    scale = np.sqrt(np.mean(theta ** 2, axis=0))
    scale = np.where(scale > 0, scale, 1.0)
    a = theta / scale
    per_eq = [set() for _ in range(targets.shape[1])]
    for threshold in thresholds:
        coef = stlsq(a, targets, threshold, ridge=ridge, normalize=False)
        for j in range(targets.shape[1]):
            per_eq[j].add(frozenset(np.flatnonzero(coef[:, j]).tolist()))
    for j in range(targets.shape[1]):
        per_eq[j].update(_forward_path(a, targets[:, j], max_terms))
    return [sorted((x for x in s if len(x) <= max_terms), key=lambda x: (len(x), sorted(x))) for s in per_eq]


def masked_lstsq(theta, targets, mask):
    """Least-squares coefficients of ``targets ~ theta @ coef`` with ``coef`` zero outside ``mask``."""
    coef = np.zeros(mask.shape)
    for j in range(mask.shape[1]):
        if mask[:, j].any():
            coef[mask[:, j], j] = _lstsq(theta[:, mask[:, j]], targets[:, j], 0.0)
    return coef
