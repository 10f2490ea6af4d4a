"""`jax.jit(jax.vmap(sciml.solve))` over a batch sharded across 4 (virtual CPU) devices, the way a user
spreads a sweep or a data-parallel step over the GPUs of one host.

Each device solves its own trajectories: the compiled program gathers nothing (no all-gather, with the
default `throw=True` check too), the result keeps the batch's sharding, and it equals the unsharded
solve (the C kernel solves each trajectory alone: the same bits; the XLA loop to rounding). A failing
trajectory raises the error naming it on every device, where it used to leave the other devices
waiting for the one that raised until XLA aborted the process.

Runs in a subprocess, since the device count is fixed when JAX starts.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import jax, jax.numpy as jnp, numpy as np, sciml
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
jax.config.update("jax_enable_x64", True)
assert jax.device_count() == 4, jax.devices()

def lotka_volterra(t, y, a):
    return jnp.stack([a * y[0] - y[0] * y[1], y[0] * y[1] - y[1]])

rows = NamedSharding(Mesh(np.array(jax.devices()), ("batch",)), P("batch"))
y0s = np.stack([np.linspace(0.5, 2.0, 8), np.linspace(2.0, 0.5, 8)], axis=1)
rates = np.linspace(1.0, 2.0, 8)
ts = np.linspace(0.0, 5.0, 6)

def step(backend, throw):
    one = lambda y0, a: sciml.solve(lotka_volterra, y0, (0.0, 5.0), a, saveat=ts, rtol=1e-8, atol=1e-8,
                                    backend=backend, throw=throw)
    return jax.jit(jax.vmap(lambda y0, a: (lambda s: (s.ys, s.status))(one(y0, a))))

sharded = [jax.device_put(x, rows) for x in (y0s, rates)]
results = {}
for backend in ("c", "jax"):
    for throw in (False, True):
        fn = step(backend, throw)
        hlo = fn.lower(*sharded).compile().as_text()
        assert "all-gather" not in hlo, (backend, throw, [l for l in hlo.splitlines() if "all-gather" in l][:3])
        ys, status = fn(*sharded)
        assert ys.sharding.spec[0] == "batch" and len(ys.sharding.device_set) == 4, (backend, ys.sharding)
        np.testing.assert_array_equal(status, 0)
        results[backend, throw] = np.asarray(ys)
    alone = np.stack([np.asarray(step(backend, False)(y0[None], a[None])[0][0]) for y0, a in zip(y0s, rates)])
    if backend == "c":
        np.testing.assert_array_equal(results["c", False], alone)
    else:
        np.testing.assert_allclose(results["jax", False], alone, rtol=1e-12, atol=1e-12)
np.testing.assert_allclose(results["c", True], results["jax", True], rtol=1e-6)

bad = jax.device_put(rates.copy(), rows).at[5].set(np.nan)
for backend in ("c", "jax"):
    try:
        jax.block_until_ready(step(backend, True)(sharded[0], bad))
        raise AssertionError(f"{backend}: a NaN trajectory did not raise")
    except Exception as err:
        assert "trajectory 5 of 8" in str(err) and "non-finite" in str(err), str(err)[-500:]
    print("raised", backend, flush=True)
print("sharded solve ok")
"""


def test_a_sharded_batch_is_solved_where_it_lies_and_a_failure_raises_on_every_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", PYTHONPATH=str(ROOT),
               JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0 and "sharded solve ok" in result.stdout, result.stdout + result.stderr[-4000:]
