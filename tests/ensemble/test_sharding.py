"""`backend="jax"` on 4 (virtual CPU) devices: the batch is split over a mesh and padded to a multiple of
the device count, and the result is the single-device result.

Runs in a subprocess, since the device count is fixed when JAX starts. Each device solves its shard as
one vmapped batch, so the sharded solve takes bit-for-bit the steps of a single-device solve of the
same shards (final states, status, counts identical; states interpolated at save points to the last
bit, which XLA may fuse differently). Against one device solving the whole batch at once it agrees to
rounding: XLA's CPU code for a batch of 3 and one of 10 may round differently.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import jax, numpy as np, sciml
from jax.sharding import Mesh
from tests.ensemble.problems import lorenz_ensemble

assert jax.device_count() == 4, jax.devices()
f, _, t_span, _ = lorenz_ensemble(np.float64)
n = 10                                       # not a multiple of 4: padded to 12, shards of 3
rho = np.linspace(0.0, 28.0, n)
params = np.stack([np.full(n, 10.0), rho, np.full(n, 8.0 / 3.0)], axis=1)
y0s = np.tile([1.0, 0.0, 0.0], (n, 1)) + 0.01 * np.arange(n)[:, None]
grid = np.linspace(0.0, 1.0, 5)
kw = dict(saveat=grid, rtol=1e-8, atol=1e-8)
leaves = jax.tree_util.tree_leaves

sharded = sciml.solve_ensemble(f, y0s, t_span, args=params, **kw)
assert sharded.ys.shape == (n, 5, 3) and sharded.status.shape == (n,)
assert len(sharded.ys.sharding.device_set) == 4 or sharded.ys.sharding.is_fully_replicated

one = Mesh(np.array(jax.devices()[:1]), ("one",))
padded = np.concatenate([np.arange(n), [n - 1, n - 1]])
pieces = [sciml.solve_ensemble(f, y0s[idx], t_span, args=params[idx], mesh=one, **kw)
          for idx in padded.reshape(4, 3)]
for (path, got), *parts in zip(jax.tree_util.tree_leaves_with_path(sharded), *[leaves(p) for p in pieces]):
    want = np.concatenate([np.asarray(p) for p in parts])[:n]
    if jax.tree_util.keystr(path) == ".ys":   # interpolated at the save points: fused differently, last bit
        np.testing.assert_allclose(got, want, rtol=4e-16, atol=4e-16)
    else:                                     # every step, the final state, status and counts: identical
        assert np.array_equal(np.asarray(got), want), f"shard mismatch in {jax.tree_util.keystr(path)}"

grid_mesh = Mesh(np.array(jax.devices()).reshape(2, 2), ("a", "b"))
on_grid = sciml.solve_ensemble(f, y0s, t_span, args=params, mesh=grid_mesh, **kw)
for a, b in zip(leaves(sharded), leaves(on_grid)):
    assert np.array_equal(np.asarray(a), np.asarray(b)), "2x2 mesh differs from the 4-device mesh"

single = sciml.solve_ensemble(f, y0s, t_span, args=params, mesh=one, **kw)
np.testing.assert_array_equal(sharded.status, single.status)
for key in ("naccept", "nreject", "nfev"):
    np.testing.assert_array_equal(sharded.stats[key], single.stats[key])
np.testing.assert_allclose(sharded.ys, single.ys, rtol=1e-12, atol=1e-12)

# generated inputs (`inputs=`) over the mesh: chunks of 2 per device (8), the last padded; those of the arrays
streamed = sciml.solve_ensemble(f, y0s, t_span, args=params, batch_size=2, **kw)
made = sciml.solve_ensemble(f, None, t_span, inputs=lambda i: (y0s[i], params[i]), n_trajectories=n,
                            batch_size=2, **kw)
for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(streamed), leaves(made)):
    assert np.array_equal(np.asarray(a), np.asarray(b)), f"generated inputs differ in {jax.tree_util.keystr(path)}"
print("sharded ok")
"""


def test_four_devices_give_the_single_device_result():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0 and "sharded ok" in result.stdout, result.stdout + result.stderr
