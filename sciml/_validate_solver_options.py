"""Checks of the options that a solver uses beyond the state: a Jacobian (``jac``), its sparsity
pattern (``jac_sparsity``) and a mass matrix (``mass_matrix`` with ``init``). Part of the one validator
(`sciml._validate`), called by `prepare`; each error names the argument and the fix."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sciml._validate import concrete


def check_jac(jac, y0, solver):
    if jac is None:
        return
    if not callable(jac):
        raise TypeError(f"`jac` must be a callable jac(t, y, args) returning the (n, n) Jacobian df/dy; got "
                        f"{type(jac).__name__}.")
    if not getattr(solver, "stiff", False):
        raise ValueError(f"`jac=` is used by the stiff solvers (Rodas5P, Rosenbrock23, Kvaerno5, RadauIIA5, BDF); `{solver!r}` "
                         f"never forms a Jacobian. Drop `jac=`, or pass e.g. `solver=sciml.solvers.Rodas5P()`.")
    if not isinstance(y0, (jax.Array, np.ndarray)) or jnp.ndim(y0) != 1:
        got = (f"shape {tuple(jnp.shape(y0))}" if isinstance(y0, (jax.Array, np.ndarray))
               else f"a {type(y0).__name__} of {len(jax.tree_util.tree_leaves(y0))} arrays")
        raise ValueError(f"`jac=` needs `y0` to be one 1-D array (then df/dy is an (n, n) matrix); got {got}. "
                         f"Flatten the state into one vector, or leave out `jac` (sciml then uses `jax.jacfwd`).")


def check_jac_sparsity(jac_sparsity, y0, solver):
    """The `JacobianSparsity` of an ``(n, n)`` pattern (array or scipy sparse matrix), or None."""
    if jac_sparsity is None:
        return None
    from sciml.solvers._sparsity import JacobianSparsity

    if not getattr(solver, "stiff", False):
        raise ValueError(f"`jac_sparsity=` is used by the stiff solvers; `{solver!r}` never forms a Jacobian. Drop "
                         f"it, or pass e.g. `solver=sciml.solvers.Rodas5P()`.")
    n = int(np.size(y0)) if isinstance(y0, (jax.Array, np.ndarray)) and jnp.ndim(y0) == 1 else None
    shape = tuple(jac_sparsity.shape) if hasattr(jac_sparsity, "shape") else np.shape(jac_sparsity)
    if n is None or shape != (n, n):
        raise ValueError(f"`jac_sparsity` must be an (n, n) array or sparse matrix for a 1-D `y0` of length n "
                         f"(nonzero where df_i/dy_j may be nonzero); got shape {shape} for `y0` of shape "
                         f"{np.shape(y0)}.")
    return JacobianSparsity.from_matrix(jac_sparsity)


#: the solvers that integrate ``M y' = f`` with a singular ``M`` (named in messages)
MASS_SOLVERS = "Rodas5P, Rosenbrock23, RadauIIA5 or BDF"
#: adjoints that differentiate the discrete DAE solve
MASS_ADJOINTS = ("Direct", "Forward", "Auto")


def mass_matrix_array(mass_matrix, n: int | None, name: str = "`mass_matrix`") -> np.ndarray:
    """``mass_matrix`` as a concrete, finite, real NumPy array of shape ``(n, n)`` (any square shape
    for ``n=None``), or a clear error that calls it ``name``."""
    M = concrete(mass_matrix)
    if M is None:
        raise TypeError(f"{name} must be a concrete array (NumPy, or JAX outside `jit`): it is part of the "
                        "compiled program (which equations are algebraic), not a traced value. Create it outside "
                        "the jitted function or close over a NumPy array.")
    square = M.ndim == 2 and M.shape[0] == M.shape[1]
    if (n is None and not square) or (n is not None and M.shape != (n, n)):
        want = "a square matrix" if n is None else f"of shape ({n}, {n}) for a state of length {n}"
        raise ValueError(f"{name} must be {want}; got shape {M.shape}.")
    if not (np.issubdtype(M.dtype, np.floating) or np.issubdtype(M.dtype, np.integer) or M.dtype == bool):
        raise TypeError(f"{name} must be a real array (float, int or bool); got dtype {M.dtype.name}.")
    if not np.all(np.isfinite(M)):
        raise ValueError(f"{name} has non-finite entries.")
    return np.array(M)


def check_mass_matrix(mass_matrix, y0, solver, adjoint, init, ensemble: bool = False):
    """The `MassMatrix` of ``mass_matrix`` (or None), checked against the state, solver and adjoint."""
    from sciml.solvers._mass import INIT_MODES, MassMatrix

    if init not in INIT_MODES:
        raise ValueError(f"`init` must be one of {INIT_MODES}; got {init!r}.")
    if mass_matrix is None:
        return None
    shape = np.shape(y0)[1:] if ensemble and isinstance(y0, (jax.Array, np.ndarray)) else np.shape(y0)
    if not isinstance(y0, (jax.Array, np.ndarray)) or len(shape) != 1:
        got = (f"shape {tuple(shape)}" if isinstance(y0, (jax.Array, np.ndarray))
               else f"a {type(y0).__name__} of {len(jax.tree_util.tree_leaves(y0))} arrays")
        raise ValueError(f"`mass_matrix=` needs the state to be one 1-D array (M is (n, n)); got {got}. Flatten the "
                         f"state into one vector.")
    mass = MassMatrix(mass_matrix_array(mass_matrix, shape[0]))
    if not getattr(solver, "takes_mass_matrix", False):
        if mass.singular:
            raise ValueError(f"`{solver!r}` cannot solve a DAE (a singular `mass_matrix`): use `solver=sciml.solvers."
                             f"Rodas5P()` (or {MASS_SOLVERS}), which solve M y' = f with a singular M.")
    name = type(adjoint).__name__
    if name not in MASS_ADJOINTS:
        raise ValueError(f"`adjoint={adjoint!r}` does not support `mass_matrix` (its backward ODE would be the "
                         f"adjoint DAE, which it does not solve); use `adjoint=sciml.adjoints.Direct()` or "
                         f"`Forward()` (or `Auto()`, which picks one of them).")
    return mass
