"""Save points: writing the interpolated state at requested times from inside the step loop.

Why the buffer is cut into chunks: XLA's CPU runtime runs a loop body's kernels back to back only
while every buffer the body touches is at most 512 bytes; one larger buffer sends the whole body
through a concurrent executor that costs several times the work of a small step (for a 2-state
problem, 101 save points took the solve from ~35 to ~75 us). So when the save buffer is modest, it is
held as a tuple of chunks of at most 512 bytes each (times and values), and a write switches to the
chunk that holds the next save point. Large saves use one buffer.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from sciml.solvers._base import evaluate_polynomial

#: save points written per pass without a nested loop
WINDOW = 4
#: XLA:CPU runs a body sequentially when all its buffers are at most this many bytes
SMALL_BYTES = 512
#: more chunks than this cost more in branching than they save
MAX_CHUNKS = 16


class StepPoly(NamedTuple):
    """An accepted step as the writer sees it: its polynomial and exact end values."""

    t: jax.Array
    dt: jax.Array
    t_end: jax.Array     # where the step's contribution ends (t_new, or a terminal event's time)
    y_end: jax.Array
    t_new: jax.Array
    y1: jax.Array
    coeffs: jax.Array

    def values_at(self, times):
        values = evaluate_polynomial(self.coeffs, (times - self.t) / self.dt)
        return jnp.where((times == self.t_new)[:, None], self.y1[None, :],
                         jnp.where((times == self.t_end)[:, None], self.y_end[None, :], values))


class SaveState(NamedTuple):
    values: tuple        # chunks (C + WINDOW, n) of values, or one (m + WINDOW, n) buffer
    idx: jax.Array       # save points written so far
    next_t: jax.Array    # time of the next save point (+inf when none is left)


class SavePoints:
    """Writes the save points ``ts`` (sorted, forward time) during a solve of an ``n``-vector."""

    def __init__(self, ts, n: int, dtype):
        self.m, self.n, self.dtype = ts.shape[0], n, dtype
        item = jnp.dtype(dtype).itemsize
        rows = SMALL_BYTES // max(n * item, ts.dtype.itemsize)
        chunk = rows - WINDOW
        chunks = -(-(self.m + 1) // chunk) if chunk >= WINDOW else MAX_CHUNKS + 1
        self.chunked = chunks <= MAX_CHUNKS
        self.chunk = chunk if self.chunked else max(self.m, 1)
        self.n_chunks = chunks if self.chunked else 1
        # Each chunk of times carries the next chunk's first WINDOW times (then +inf), so a window
        # never needs two chunks and the time after a chunk's last point is known.
        padded = jnp.concatenate([ts, jnp.full((self.n_chunks * self.chunk + WINDOW,), jnp.inf, ts.dtype)])
        self.times = tuple(padded[j * self.chunk: (j + 1) * self.chunk + WINDOW] for j in range(self.n_chunks))

    def init(self, t0, y0) -> SaveState:
        """Save points at ``t0`` take ``y0`` exactly."""
        values = []
        for times in self.times:
            start = times <= t0
            values.append(jnp.where(start[:, None], y0[None, :], jnp.zeros_like(y0)[None, :]))
        idx = sum(jnp.sum(t[: self.chunk] <= t0) for t in self.times).astype(jnp.int32)
        return SaveState(tuple(values), idx, self._time_at(idx))

    def _chunk_of(self, idx):
        j = jnp.minimum(idx // self.chunk, self.n_chunks - 1)
        return j, idx - j * self.chunk

    def _read(self, idx, size: int):
        """``size`` save times from point ``idx`` on (they never leave its chunk's padded times)."""
        j, local = self._chunk_of(idx)
        if self.n_chunks == 1:
            return lax.dynamic_slice(self.times[0], (local,), (size,))
        return lax.switch(j, [lambda i, t=t: lax.dynamic_slice(t, (i,), (size,)) for t in self.times], local)

    def _time_at(self, idx):
        return self._read(idx, 1)[0]

    def pending(self, state: SaveState, t_end) -> jax.Array:
        return state.next_t <= t_end

    def write(self, state: SaveState, step: StepPoly) -> SaveState:
        """Write every save point in ``(step.t, step.t_end]``, a window at a time. (Running the first
        window outside the loop saves no time per call and compiles the window twice.)"""

        def window(c):
            values, idx, _ = c
            j, local = self._chunk_of(idx)
            times = self._read(idx, WINDOW + 1)
            take = (times[:WINDOW] <= step.t_end) & (local + jnp.arange(WINDOW) < self.chunk)
            rows = step.values_at(times[:WINDOW])
            zero = jnp.zeros((), local.dtype)
            # Rows past those taken are scratch: rewritten later or masked at the end.
            if self.n_chunks == 1:
                values = (lax.dynamic_update_slice(values[0], rows, (local, zero)),)
            else:
                values = lax.switch(j, [lambda v, k=k: v[:k] + (lax.dynamic_update_slice(v[k], rows, (local, zero)),)
                                        + v[k + 1:] for k in range(self.n_chunks)], values)
            taken = jnp.sum(take).astype(jnp.int32)
            return values, idx + taken, times[taken]

        c = (state.values, state.idx, state.next_t)
        return SaveState(*lax.while_loop(lambda c: c[2] <= step.t_end, window, c))

    def finish(self, state: SaveState) -> jax.Array:
        """The ``(m, n)`` saved values, NaN at points never reached."""
        values = jnp.concatenate([v[: self.chunk] for v in state.values])[: self.m]
        reached = jnp.arange(self.m) < state.idx
        return jnp.where(reached[:, None], values, jnp.nan)
