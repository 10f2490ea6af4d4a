"""A Jacobian's sparsity pattern, and the Jacobian computed with it (``jac_sparsity=``).

Columns of ``df/dy`` that share no row are grouped (a greedy colouring, Curtis, Powell & Reid 1974,
"On the estimation of sparse Jacobian matrices", the scheme scipy's ``jac_sparsity`` uses with finite
differences); one forward-mode Jacobian-vector product per group gives every column of the group, so a
banded or block-sparse Jacobian of size ``n`` costs a few products instead of ``n``. The result is the
exact Jacobian (autodiff, not differences) placed into a dense ``(n, n)`` matrix for the solvers' LU.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class JacobianSparsity:
    """Where ``df/dy`` may be nonzero, with the column groups that one product each resolves.

    ``rows``/``cols``: the structurally nonzero entries; ``colors[j]``: the group of column ``j``. Equal
    patterns compare (and hash) equal, so a repeated solve finds its compiled program.

    Example:
        >>> import numpy as np
        >>> from sciml.solvers._sparsity import JacobianSparsity
        >>> JacobianSparsity.from_matrix(np.eye(4) + np.eye(4, k=1)).n_colors
        2
    """

    n: int
    rows: np.ndarray
    cols: np.ndarray
    colors: np.ndarray
    n_colors: int

    @classmethod
    def from_matrix(cls, pattern) -> "JacobianSparsity":
        """From an ``(n, n)`` array (nonzero: may be nonzero) or a scipy sparse matrix."""
        dense = np.asarray(pattern.toarray() if hasattr(pattern, "toarray") else pattern) != 0
        rows, cols = np.nonzero(dense)
        colors = _color_columns(dense)
        return cls(n=dense.shape[0], rows=rows, cols=cols, colors=colors, n_colors=int(colors.max(initial=-1)) + 1)

    def _key(self) -> tuple:
        return self.n, self.rows.tobytes(), self.cols.tobytes()

    def __eq__(self, other) -> bool:
        return isinstance(other, JacobianSparsity) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def jacobian(self, f):
        """``jac(s, y, args)``: the dense ``df/dy`` of ``f(s, y, args)`` from ``n_colors`` products."""
        seeds = np.zeros((self.n_colors, self.n))
        seeds[self.colors, np.arange(self.n)] = 1.0
        rows, cols, colors = self.rows, self.cols, self.colors

        def jac(s, y, args):
            def product(v):
                return jax.jvp(lambda x: f(s, x, args), (y,), (v,))[1]

            compressed = jax.vmap(product)(jnp.asarray(seeds, y.dtype))     # (n_colors, n)
            return jnp.zeros((self.n, self.n), compressed.dtype).at[rows, cols].set(compressed[colors[cols], rows])

        return jac


def _color_columns(dense: np.ndarray) -> np.ndarray:
    """A group per column such that no two columns of a group have a nonzero in the same row (greedy,
    in column order)."""
    n = dense.shape[1]
    colors = np.zeros(n, dtype=np.int64)
    used: list[np.ndarray] = []          # per group: the rows its columns occupy
    for j in range(n):
        column = dense[:, j]
        for c, rows in enumerate(used):
            if not (rows & column).any():
                rows |= column
                colors[j] = c
                break
        else:
            used.append(column.copy())
            colors[j] = len(used) - 1
    return colors
