"""Symbolic recovery: turn what a trained network learned into equations, by sparse regression.

The UDE workflow (Rackauckas et al. 2020): train known physics plus a network on data, evaluate the
network's contribution along the fitted trajectory, and find the few terms of a candidate library
(here polynomials, :class:`PolynomialLibrary`) that reproduce it:

1. **Candidates.** For each equation, sparse supports from the sequentially thresholded least squares of
   SINDy (:func:`stlsq`, Brunton et al. 2016) over a sweep of thresholds, together with the nested
   supports of greedy forward selection (one term at a time, the one that reduces the residual most),
   which stays reliable when the library's columns are nearly collinear along one trajectory.
2. **Selection.** Each candidate (one support per equation) is scored by the extended Bayesian
   information criterion (EBIC, Chen and Chen 2008): the BIC plus a charge for how many supports of
   its size there were to choose from, since a search over many supports finds one that fits the
   noise. With ``refit`` (e.g. :func:`trajectory_refit`), the candidate's coefficients are first
   refitted to the *measured data* and the score is computed from the data residual, so the choice
   is made against the measurement noise rather than against the network's own errors (Mangan et al.
   2017); without it, from the regression residual.

``discover(...)`` returns a :class:`Discovery` whose ``equations`` print as ``dx/dt = -0.9 x*y``.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sciml._sparse_regression import candidate_supports, masked_lstsq, stlsq

__all__ = ["PolynomialLibrary", "stlsq", "Equations", "Refit", "Candidate", "Discovery", "discover",
           "trajectory_refit"]


@dataclasses.dataclass(frozen=True)
class PolynomialLibrary:
    """All monomials of the state variables up to ``degree``: ``1, x, y, x^2, x*y, y^2, ...``.

    Attributes:
        variables: names of the state components, e.g. ``("x", "y")``.
        degree: highest total degree.
        bias: include the constant term ``1``.

    Example:
        >>> import numpy as np
        >>> from sciml.discovery import PolynomialLibrary
        >>> lib = PolynomialLibrary(("x", "y"), degree=2)
        >>> lib.names
        ('1', 'x', 'y', 'x^2', 'x*y', 'y^2')
        >>> np.asarray(lib(np.array([2.0, 3.0]))).tolist()
        [1.0, 2.0, 3.0, 4.0, 6.0, 9.0]
    """

    variables: tuple[str, ...]
    degree: int = 2
    bias: bool = True

    def __post_init__(self):
        object.__setattr__(self, "variables", tuple(self.variables))
        if not self.variables or not all(isinstance(v, str) and v for v in self.variables):
            raise ValueError(f"`variables` must name each state component, e.g. ('x', 'y'); got {self.variables!r}.")
        if isinstance(self.degree, bool) or not isinstance(self.degree, int) or self.degree < 1:
            raise ValueError(f"`degree` must be an int >= 1; got {self.degree!r}.")

    @property
    def exponents(self) -> tuple[tuple[int, ...], ...]:
        """One exponent tuple per term, by total degree, then with earlier variables first."""
        n = len(self.variables)
        out = []
        for total in range(0 if self.bias else 1, self.degree + 1):
            for combo in itertools.combinations_with_replacement(range(n), total):
                out.append(tuple(combo.count(i) for i in range(n)))
        return tuple(out)

    @property
    def names(self) -> tuple[str, ...]:
        def name(e):
            parts = [v if k == 1 else f"{v}^{k}" for v, k in zip(self.variables, e) if k]
            return "*".join(parts) or "1"
        return tuple(name(e) for e in self.exponents)

    def __len__(self) -> int:
        return len(self.exponents)

    def __call__(self, u):
        """The terms at states ``u`` of shape ``(..., n)``: shape ``(..., len(library))``."""
        u = jnp.asarray(u)
        if u.shape[-1] != len(self.variables):
            raise ValueError(f"the library has {len(self.variables)} variables {self.variables}, but the states "
                             f"have {u.shape[-1]} components (shape {u.shape}).")
        return jnp.stack([jnp.prod(u ** jnp.asarray(e, u.dtype), axis=-1) if any(e)
                          else jnp.ones(u.shape[:-1], u.dtype) for e in self.exponents], axis=-1)


@dataclasses.dataclass
class Equations:
    """Polynomial right-hand sides: ``coefficients[:, j]`` are the library terms of equation ``j``.

    ``str(eqs)`` prints one line per equation, e.g. ``dx/dt = -0.9 x*y``.
    """

    library: PolynomialLibrary
    coefficients: np.ndarray
    lhs: tuple[str, ...]
    stderr: np.ndarray | None = None
    digits: int = 4

    def terms(self, j: int) -> dict[str, float]:
        """``{term name: coefficient}`` of the nonzero terms of equation ``j``."""
        return {name: float(c) for name, c in zip(self.library.names, self.coefficients[:, j]) if c != 0}

    def __str__(self) -> str:
        lines = []
        for j, lhs in enumerate(self.lhs):
            parts = []
            for i in np.flatnonzero(self.coefficients[:, j]):
                c, name = self.coefficients[i, j], self.library.names[i]
                value = f"{abs(c):.{self.digits}g}"
                if self.stderr is not None:
                    value = f"({value} ± {self.stderr[i, j]:.2g})"
                parts.append(("- " if c < 0 else "+ ") + value + ("" if name == "1" else f" {name}"))
            rhs = " ".join(parts) if parts else "0"
            if parts:  # the first sign is written without the space: "-0.9 x*y", "1.3 x"
                rhs = rhs[2:] if rhs.startswith("+ ") else "-" + rhs[2:]
            lines.append(f"{lhs} = {rhs}")
        return "\n".join(lines)


@dataclasses.dataclass
class Refit:
    """What a ``refit`` returns: coefficients fitted to data, the residual sum of squares over
    ``n_obs`` observations, and (optionally) the coefficients' standard errors."""

    coefficients: np.ndarray
    rss: float
    n_obs: int
    stderr: np.ndarray | None = None


@dataclasses.dataclass
class Candidate:
    """One sparse model tried: its equations (refitted if a refit was given), residual and score
    (extended BIC, see :func:`discover`)."""

    equations: Equations
    rss: float
    n_obs: int
    score: float

    @property
    def n_terms(self) -> int:
        return int(np.count_nonzero(self.equations.coefficients))


@dataclasses.dataclass
class Discovery:
    """What :func:`discover` found.

    Attributes:
        equations: the selected model (coefficients refitted to the data when ``refit`` was given).
        regression: the selected support with the coefficients of the regression on the targets.
        candidates: every model scored, best score (extended BIC) first.
    """

    equations: Equations
    regression: Equations
    candidates: list[Candidate]

    def __str__(self) -> str:
        lines = [str(self.equations), "", f"{len(self.candidates)} candidate models; the 5 best by EBIC:"]
        for c in self.candidates[:5]:
            support = "; ".join(", ".join(c.equations.terms(j)) or "0" for j in range(len(c.equations.lhs)))
            mark = "*" if c.equations is self.equations else " "
            lines.append(f" {mark} EBIC {c.score:10.2f}  rss {c.rss:.4e}  [{support}]")
        return "\n".join(lines)


def discover(states, targets, library: PolynomialLibrary, *, lhs: Sequence[str] | None = None,
             refit: Callable | None = None, thresholds=None, ridge: float = 1e-3, max_terms: int = 3,
             gamma: float = 1.0, tolerance: float = 2.0) -> Discovery:
    """Find the sparse polynomial model of ``targets`` as a function of ``states``.

    Every candidate is scored by the extended BIC (Chen and Chen 2008)
    ``n log(rss / n) + k log(n) + 2 gamma log(binom(p, k))``, with ``k`` nonzero coefficients out of
    the ``p = len(library) * q`` possible ones and ``n`` observations; the sparsest candidate whose
    score is within ``tolerance`` of the best is chosen (a difference below 2 is "not worth more than
    a bare mention", Kass and Raftery 1995). The plain BIC (``gamma=0``) approximates the evidence
    under a prior that makes all ``2^p`` supports equally likely, which puts most of the prior on
    supports of about ``p / 2`` terms; among the many candidates of a size above the truth's, one then
    fits the noise well enough to win. ``gamma=1`` gives every size the same prior probability instead,
    shared among its ``binom(p, k)`` supports.

    Args:
        states: states at which the targets were evaluated, shape ``(m, n)`` (e.g. the fitted
            trajectory of a UDE).
        targets: what to explain, shape ``(m, q)`` (e.g. ``ude.network(params, states)``).
        library: the candidate terms.
        lhs: names of the left-hand sides (default ``d<variable>/dt``).
        refit: optional ``refit(support, coefficients) -> Refit`` that refits a candidate to
            measured data (see :func:`trajectory_refit`); scores then use its residual.
        thresholds: STLSQ thresholds to sweep (default 40 values from 1e-3 to 10, on normalised columns).
        ridge: ridge weight of the STLSQ solves.
        max_terms: most terms per equation in a candidate.
        gamma: weight of the EBIC's charge for the number of supports of each size, in ``[0, 1]``
            (0: the plain BIC).
        tolerance: score difference within which the sparsest candidate is preferred.

    Returns:
        A :class:`Discovery`.

    Example:
        >>> import numpy as np
        >>> from sciml.discovery import PolynomialLibrary, discover
        >>> rng = np.random.default_rng(0)
        >>> u = rng.uniform(0.5, 2.0, size=(200, 2))
        >>> targets = np.stack([-0.9 * u[:, 0] * u[:, 1], 0.8 * u[:, 0] * u[:, 1]], axis=1)
        >>> found = discover(u, targets + 1e-3 * rng.standard_normal((200, 2)), PolynomialLibrary(("x", "y")))
        >>> print(found.equations)
        dx/dt = -0.9 x*y
        dy/dt = 0.8 x*y
    """
    states, targets = np.asarray(states, np.float64), np.asarray(targets, np.float64)
    targets = targets[:, None] if targets.ndim == 1 else targets
    theta = np.asarray(library(states), np.float64)
    if theta.shape[0] != targets.shape[0]:
        raise ValueError(f"`states` and `targets` need the same number of rows; got {states.shape} and "
                         f"{targets.shape}.")
    lhs = tuple(lhs) if lhs is not None else tuple(f"d{v}/dt" for v in library.variables[:targets.shape[1]])
    if len(lhs) != targets.shape[1]:
        raise ValueError(f"`lhs` names {len(lhs)} equations, but `targets` has {targets.shape[1]} columns.")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"`gamma` must be in [0, 1] (0: the plain BIC, 1: the extended BIC); got {gamma!r}.")
    thresholds = np.geomspace(1e-3, 10.0, 40) if thresholds is None else np.asarray(thresholds)
    supports = candidate_supports(theta, targets, thresholds, ridge, max_terms)
    p = len(library) * targets.shape[1]
    candidates, masks = [], {}
    for combo in itertools.product(*supports):
        mask = np.zeros((len(library), targets.shape[1]), bool)
        for j, s in enumerate(combo):
            mask[list(s), j] = True
        coef = masked_lstsq(theta, targets, mask)
        fitted = (Refit(coef, float(np.sum((theta @ coef - targets) ** 2)), targets.size) if refit is None
                  else refit(mask, coef))
        n, k = fitted.n_obs, int(mask.sum())
        score = n * np.log(max(fitted.rss, 1e-300) / n) + k * np.log(n) + 2 * gamma * math.log(math.comb(p, k))
        eqs = Equations(library, np.where(mask, fitted.coefficients, 0.0), lhs, stderr=fitted.stderr)
        candidates.append(Candidate(eqs, float(fitted.rss), int(n), float(score)))
        masks[id(eqs)] = mask
    candidates.sort(key=lambda c: c.score)
    close = [c for c in candidates if c.score <= candidates[0].score + tolerance]
    chosen = min(close, key=lambda c: (c.n_terms, c.score))
    regression = Equations(library, masked_lstsq(theta, targets, masks[id(chosen.equations)]), lhs)
    return Discovery(equations=chosen.equations, regression=regression, candidates=candidates)


def trajectory_refit(known: Callable, library: PolynomialLibrary, ts, ys, *, fit_y0: bool = True, solver=None,
                     rtol: float = 1e-7, atol: float = 1e-7, max_steps: int = 10_000) -> Callable:
    """A ``refit`` for :func:`discover` that fits a candidate to a measured trajectory.

    The candidate model is ``du/dt = known(t, u) + library(u) @ coefficients``; its nonzero
    coefficients (and the initial state, with ``fit_y0``) are fitted to ``ys`` at ``ts`` by
    Levenberg-Marquardt (``scipy.optimize.least_squares``) on the residuals of one solve, with the
    Jacobian from forward-mode differentiation through :func:`sciml.solve`.

    Args:
        known: ``known(t, u) -> du/dt``, the physics outside the library (parameters bound).
        library: the candidate terms.
        ts: times of the measurements, shape ``(m,)``.
        ys: the measured states, shape ``(m, n)``.
        fit_y0: also fit the initial state (starting from ``ys[0]``), so that a noisy first point
            does not bias the coefficients.
        solver: as for :func:`sciml.solve`.
        rtol: relative tolerance of the solves.
        atol: absolute tolerance of the solves.
        max_steps: bound on step attempts per solve.

    Returns:
        ``refit(support, coefficients) -> Refit``, with the coefficients' standard errors from the
        Gauss-Newton covariance at the optimum.
    """
    from scipy.optimize import least_squares

    from sciml._solve import solve
    from sciml.adjoints import Forward

    ts, ys = np.asarray(ts, np.float64), np.asarray(ys, np.float64)
    n = ys.shape[1]

    def field(t, u, coef):
        return known(t, u) + library(u) @ coef

    @jax.jit
    def residuals(y0, coef):
        sol = solve(field, y0, (ts[0], ts[-1]), args=coef, saveat=ts, solver=solver, rtol=rtol, atol=atol,
                    max_steps=max_steps, adjoint=Forward(), throw=False)
        return jnp.ravel(sol.ys - ys)

    jacobian = jax.jit(jax.jacfwd(residuals, argnums=(0, 1)))

    def refit(support, coefficients) -> Refit:
        support = np.asarray(support, bool)
        n_y0 = n if fit_y0 else 0

        def unpack(z):
            coef = np.zeros(support.shape)
            coef[support] = z[n_y0:]
            return (z[:n] if fit_y0 else ys[0]), coef

        def fun(z):
            r = np.asarray(residuals(*unpack(z)))
            return np.where(np.isfinite(r), r, 1e6)

        def jac(z):
            j_y0, j_coef = (np.asarray(j) for j in jacobian(*unpack(z)))
            cols = j_coef.reshape(j_coef.shape[0], -1)[:, support.ravel()]
            out = np.concatenate([j_y0, cols], axis=1) if fit_y0 else cols
            return np.where(np.isfinite(out), out, 0.0)  # a failed solve: the residual is flat there

        z0 = np.concatenate([ys[0][:n_y0], np.asarray(coefficients)[support]])
        if z0.size == 0:
            r = fun(z0)
            return Refit(np.zeros(support.shape), float(r @ r), r.size)
        result = least_squares(fun, z0, jac=jac, method="lm")
        _, coef = unpack(result.x)
        rss, m = float(result.fun @ result.fun), result.fun.size
        # Standard errors from the Gauss-Newton covariance s^2 (J^T J)^-1 at the optimum.
        cov = rss / max(m - z0.size, 1) * np.linalg.pinv(result.jac.T @ result.jac)
        stderr = np.zeros(support.shape)
        stderr[support] = np.sqrt(np.abs(np.diag(cov)))[n_y0:]
        return Refit(coef, rss, m, stderr)

    return refit
