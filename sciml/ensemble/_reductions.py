"""Reductions: folds over the chunks of a streamed ensemble (``solve_ensemble(..., batch_size=k, reduce=...)``).

A reduction is three pure functions, in the style of optax's ``(init, update)`` pairs:

    state = reduction.init(values)              # values: the shapes/dtypes of one chunk's output
    state = reduction.update(state, values, valid)   # traced, once per chunk, inside the chunk program
    result = reduction.finish(state)            # once, at the end

``values`` is a pytree of arrays whose leading axis runs over the chunk's trajectories and ``valid`` a
``(chunk,)`` boolean mask of the trajectories to fold in (real trajectories, not the padding of the last
chunk, that succeeded). ``update`` must return a state of the same structure, shapes and dtypes as
``init`` (every chunk has the same shape, so the chunk program compiles once).

Ready-made: `MeanVar` (per-element mean and variance, Chan et al.'s parallel combine of chunk
statistics), `MinMax`, `Histogram`, and `Fold` (an initial value plus an update function).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Reduction:
    """The protocol of ``reduce=``: ``init(values) -> state``, ``update(state, values, valid) -> state``,
    ``finish(state) -> result``. A reduction is hashable (it keys the compiled fold): the ready-made ones
    are frozen dataclasses, equal when their parameters are."""

    def init(self, values) -> Any:
        raise NotImplementedError

    def update(self, state, values, valid) -> Any:
        raise NotImplementedError

    def finish(self, state) -> Any:
        return state


def count_dtype():
    """The integer dtype of counts: int64 (int32 with ``SCIML_X64=0``)."""
    return jax.dtypes.canonicalize_dtype(np.int64)


def _mask(valid, x):
    """``valid`` shaped to broadcast against ``x`` (trajectories on the leading axis)."""
    return jnp.reshape(valid, valid.shape + (1,) * (x.ndim - 1))


def _inexact(values, name: str):
    for leaf in jax.tree_util.tree_leaves(values):
        if not jnp.issubdtype(leaf.dtype, jnp.inexact):
            raise TypeError(f"`reduce={name}` needs floating or complex outputs; `output` gave dtype "
                            f"{np.dtype(leaf.dtype).name}. Convert it in `output`, e.g. `x.astype(jnp.float64)`.")


class Moments(NamedTuple):
    """What `MeanVar` gives: per-element ``mean`` and ``variance`` (pytrees like one trajectory's output,
    in its dtype; variance is real) over ``count`` trajectories."""

    mean: Any
    variance: Any
    count: Any


@dataclasses.dataclass(frozen=True)
class MeanVar(Reduction):
    """Running per-element mean and variance, numerically stable at any count.

    Each chunk's mean and centred sum of squares are computed in two passes over the chunk, then merged
    with the running ones by the parallel combine of Chan, Golub & LeVeque (1979), "Updating formulae and
    a pairwise algorithm for computing sample variances" (Welford's update, a chunk at a time): no sum of
    squares of raw values, so no cancellation. The state keeps the outputs' dtype (float32 stays float32);
    the count is an exact integer.

    Args:
        ddof: delta degrees of freedom: ``variance = M2 / (count - ddof)`` (0: NumPy's default; 1: the
            unbiased sample variance).

    Example:
        >>> import jax.numpy as jnp, sciml
        >>> from sciml.ensemble import MeanVar
        >>> ks = jnp.linspace(0.5, 2.0, 100)
        >>> r = sciml.solve_ensemble(lambda t, y, k: -k * y, jnp.ones((100, 1)), (0.0, 1.0), args=ks,
        ...                          batch_size=32, output=lambda ens: ens.ys[:, -1, 0], reduce=MeanVar())
        >>> bool(jnp.allclose(r.value.mean, jnp.exp(-ks).mean(), rtol=1e-5))
        True
    """

    ddof: int = 0

    def init(self, values):
        _inexact(values, "MeanVar()")

        def zeros(x):
            return jnp.zeros(x.shape[1:], x.dtype)

        def real_zeros(x):
            return jnp.zeros(x.shape[1:], jnp.zeros((), x.dtype).real.dtype)

        return Moments(mean=jax.tree_util.tree_map(zeros, values),
                       variance=jax.tree_util.tree_map(real_zeros, values), count=jnp.zeros((), count_dtype()))

    def update(self, state, values, valid):
        n_a, n_b = state.count, jnp.sum(valid, dtype=count_dtype())
        n = n_a + n_b

        def merge(mean_a, m2_a, x):
            real = m2_a.dtype
            w = jnp.where(n > 0, n_b.astype(real) / jnp.maximum(n, 1).astype(real), 0).astype(real)
            v = _mask(valid, x)
            mean_b = jnp.sum(jnp.where(v, x, 0), axis=0) / jnp.maximum(n_b, 1).astype(real)
            d = jnp.where(v, x - mean_b, 0)
            m2_b = jnp.sum(jnp.real(d * jnp.conj(d)), axis=0)
            delta = mean_b - mean_a
            mean = mean_a + delta * w
            m2 = m2_a + m2_b + jnp.real(delta * jnp.conj(delta)) * n_a.astype(real) * w
            return mean.astype(mean_a.dtype), m2.astype(real)

        merged = jax.tree_util.tree_map(merge, state.mean, state.variance, values)
        outer = jax.tree_util.tree_structure(state.mean)
        mean, m2 = jax.tree_util.tree_transpose(outer, jax.tree_util.tree_structure((0, 0)), merged)
        return Moments(mean=mean, variance=m2, count=n)

    def finish(self, state):
        denominator = state.count - self.ddof

        def variance(m2):
            scaled = m2 / jnp.maximum(denominator, 1).astype(m2.dtype)
            return jnp.where(denominator > 0, scaled, jnp.nan).astype(m2.dtype)

        return Moments(mean=state.mean, variance=jax.tree_util.tree_map(variance, state.variance),
                       count=int(state.count))


class Extrema(NamedTuple):
    """What `MinMax` gives: per-element ``min`` and ``max`` (``+inf``/``-inf`` if nothing was folded)."""

    min: Any
    max: Any


def _extreme(dtype, sign: int):
    dtype = np.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.floating):
        return sign * np.inf
    return np.iinfo(dtype).max if sign > 0 else np.iinfo(dtype).min


@dataclasses.dataclass(frozen=True)
class MinMax(Reduction):
    """Running per-element minimum and maximum of real (floating or integer) outputs, in their dtype.

    A NaN in a folded output propagates to the result (it is never skipped silently).
    """

    def init(self, values):
        for leaf in jax.tree_util.tree_leaves(values):
            if jnp.issubdtype(leaf.dtype, jnp.complexfloating):
                raise TypeError("`reduce=MinMax()` needs real outputs; `output` gave a complex one. Reduce "
                                "`jnp.abs(x)` or `x.real` instead.")
        def filled(sign):
            return jax.tree_util.tree_map(lambda x: jnp.full(x.shape[1:], _extreme(x.dtype, sign), x.dtype), values)

        return Extrema(min=filled(1), max=filled(-1))

    def update(self, state, values, valid):
        def low(m, x):
            return jnp.minimum(m, jnp.min(jnp.where(_mask(valid, x), x, _extreme(x.dtype, 1)), axis=0))

        def high(m, x):
            return jnp.maximum(m, jnp.max(jnp.where(_mask(valid, x), x, _extreme(x.dtype, -1)), axis=0))

        return Extrema(min=jax.tree_util.tree_map(low, state.min, values),
                       max=jax.tree_util.tree_map(high, state.max, values))


class Counts(NamedTuple):
    """What `Histogram` gives: per-element ``counts`` (shape ``element + (bins,)``) and the values that
    fell in no bin: ``below`` the first edge, ``above`` the last, and ``nan`` (each shape ``element``)."""

    counts: Any
    below: Any
    above: Any
    nan: Any


@dataclasses.dataclass(frozen=True)
class Histogram(Reduction):
    """Per-element histogram of real outputs over fixed bin ``edges`` (NumPy's convention: bins are
    half-open ``[e_i, e_i+1)`` except the last, which includes its right edge). Values outside the edges
    and NaNs are counted apart, never dropped silently. One array output (not a pytree).

    Args:
        edges: increasing bin edges, at least two. `Histogram.uniform(lo, hi, bins)` spaces them evenly.
    """

    edges: tuple

    def __post_init__(self):
        edges = np.asarray(self.edges, dtype=np.float64)
        if edges.ndim != 1 or edges.size < 2 or not np.all(np.isfinite(edges)) or np.any(np.diff(edges) <= 0):
            raise ValueError(f"`Histogram(edges)` needs at least two finite, strictly increasing edges; got "
                             f"{self.edges!r}. Use e.g. `Histogram.uniform(0.0, 1.0, bins=50)`.")
        object.__setattr__(self, "edges", tuple(float(e) for e in edges))

    @classmethod
    def uniform(cls, lo: float, hi: float, bins: int) -> "Histogram":
        """``bins`` equal bins between ``lo`` and ``hi``."""
        return cls(tuple(np.linspace(lo, hi, int(bins) + 1)))

    def init(self, values):
        leaves = jax.tree_util.tree_leaves(values)
        if len(leaves) != 1 or jnp.issubdtype(leaves[0].dtype, jnp.complexfloating):
            dtypes = [np.dtype(x.dtype).name for x in leaves]
            raise TypeError("`reduce=Histogram(...)` needs `output` to give one real array per chunk; got "
                            f"{jax.tree_util.tree_structure(values)} with dtypes {dtypes}.")
        element = leaves[0].shape[1:]
        zeros = jnp.zeros(element, count_dtype())
        return Counts(counts=jnp.zeros(element + (len(self.edges) - 1,), count_dtype()), below=zeros, above=zeros,
                      nan=zeros)

    def update(self, state, values, valid):
        x = jax.tree_util.tree_leaves(values)[0]
        edges = jnp.asarray(self.edges, jnp.result_type(x.dtype, jnp.float64))
        bins = len(self.edges) - 1
        xe = x.astype(edges.dtype)
        # slots: 0..bins-1 the bins, then below, above, nan
        slot = jnp.clip(jnp.searchsorted(edges, xe, side="right") - 1, 0, bins - 1)
        slot = jnp.where(xe < edges[0], bins, jnp.where(xe > edges[-1], bins + 1, slot))
        slot = jnp.where(jnp.isnan(xe), bins + 2, slot)
        element = int(np.prod(x.shape[1:], dtype=np.int64))
        flat = jnp.reshape(slot, (x.shape[0], element)) + (bins + 3) * jnp.arange(element)
        weight = jnp.broadcast_to(_mask(valid, flat), flat.shape).astype(count_dtype())
        table = jnp.zeros(element * (bins + 3), count_dtype()).at[flat.ravel()].add(weight.ravel())
        table = jnp.reshape(table, x.shape[1:] + (bins + 3,))
        return Counts(counts=state.counts + table[..., :bins], below=state.below + table[..., bins],
                      above=state.above + table[..., bins + 1], nan=state.nan + table[..., bins + 2])


class Fold(Reduction):
    """A reduction from an initial value and an update function: the general fold.

    Args:
        initial: the state before any chunk, a pytree of arrays.
        update: ``update(state, values, valid) -> state``, traced once; must keep the state's structure,
            shapes and dtypes (checked before the first chunk).
        finish: optional ``finish(state) -> result`` (default: the state).

    A `Fold` is hashable by identity: reusing one object reuses its compiled fold.

    Example (the sum of every trajectory's final state):
        ``Fold(jnp.zeros(3), lambda s, y, valid: s + jnp.sum(jnp.where(valid[:, None], y, 0), axis=0))``
    """

    def __init__(self, initial: Any, update: Callable, finish: Callable | None = None):
        if not callable(update) or (finish is not None and not callable(finish)):
            raise TypeError(f"`Fold(initial, update, finish=None)` needs callables `update(state, values, valid)` "
                            f"and `finish(state)`; got {update!r} and {finish!r}.")
        self.initial, self._update, self._finish = initial, update, finish

    def __repr__(self) -> str:
        return f"Fold({self._update!r})"

    def init(self, values):
        return jax.tree_util.tree_map(jnp.asarray, self.initial)

    def update(self, state, values, valid):
        return self._update(state, values, valid)

    def finish(self, state):
        return state if self._finish is None else self._finish(state)
