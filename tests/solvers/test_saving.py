"""Save points are the step polynomials evaluated at the requested times, whatever the buffer layout.

Small saves are held in chunks of at most 512 bytes (see `sciml/solvers/_saving.py`); large ones in
one buffer. Every layout must give exactly what the dense output gives at the same times, including
steps that hold many save points and save points that span chunks.
"""

import jax.numpy as jnp
import numpy as np
import pytest

import sciml
from sciml.solvers._saving import SavePoints

RATES = np.linspace(0.5, 2.0, 40)


def decay(t, y, k):
    return -k * y


# (state size, save points, dtype): one chunk, several chunks, points spanning chunks, one buffer.
LAYOUTS = [(2, 11, jnp.float64), (2, 60, jnp.float64), (3, 6, jnp.complex128), (1, 200, jnp.float32),
           (40, 30, jnp.float64)]


@pytest.mark.parametrize("n, m, dtype", LAYOUTS)
def test_save_points_equal_the_dense_output_at_the_same_times(n, m, dtype):
    y0 = jnp.ones(n, dtype)
    k = jnp.asarray(RATES[:n], dtype)
    ts = jnp.linspace(0.0, 3.0, m) ** 2 / 3.0          # crowded early: many points in one step
    saved = sciml.solve(decay, y0, (0.0, 3.0), args=k, saveat=ts, rtol=1e-5, atol=1e-5, max_steps=512)
    dense = sciml.solve(decay, y0, (0.0, 3.0), args=k, saveat="dense", rtol=1e-5, atol=1e-5, max_steps=512)
    assert saved.ys.dtype == dtype
    expected = np.array(dense.evaluate(ts))
    expected[0] = np.asarray(y0)                       # the point at t0 is y0 itself
    tol = 1e-5 if dtype == jnp.float32 else 1e-12
    np.testing.assert_allclose(np.asarray(saved.ys), expected, rtol=tol, atol=tol)


def test_layout_choice():
    small = SavePoints(jnp.zeros(60), 2, jnp.float64)
    assert small.chunked and small.n_chunks == 3 and all(t.size * 8 <= 512 for t in small.times)
    big = SavePoints(jnp.zeros(5000), 2, jnp.float64)
    assert not big.chunked and big.n_chunks == 1
    wide = SavePoints(jnp.zeros(10), 100, jnp.float64)   # one row is already over 512 bytes
    assert not wide.chunked
