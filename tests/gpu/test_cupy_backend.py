"""`backend="cupy"` on an NVIDIA GPU: the same answers as `sciml.solve` per trajectory and as the C
backend (the same kernel source), in float32 and float64; CuPy and JAX device arrays in and out without
a host round trip; per-trajectory status. Skipped without CuPy and a CUDA device."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sciml
import sciml.solvers as S
from tests.ensemble.problems import N, PROBLEMS, blowup, blowup_exact, saveat, tolerances

cupy = pytest.importorskip("cupy")
try:
    _DEVICES = cupy.cuda.runtime.getDeviceCount()
except Exception:  # CUDARuntimeError: CuPy without a driver
    _DEVICES = 0

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(_DEVICES == 0, reason="no CUDA device")]
JAX_ON_GPU = any(d.platform == "gpu" for d in jax.devices())


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("problem", list(PROBLEMS))
def test_cupy_agrees_with_sciml_solve_and_the_c_backend(problem, dtype):
    f, y0s, t_span, params = PROBLEMS[problem](dtype)
    rtol, atol = tolerances(dtype)
    grid = saveat(t_span, dtype)
    ens = sciml.solve_ensemble(f, cupy.asarray(y0s), t_span, args=cupy.asarray(params), backend="cupy",
                               saveat=grid, rtol=rtol, atol=atol)
    assert isinstance(ens.ys, cupy.ndarray) and ens.ys.dtype == dtype and ens.backend == "cupy"
    ys = ens.ys.get()
    for i in range(N):
        ref = sciml.solve(f, y0s[i], t_span, args=params[i], saveat=grid, rtol=rtol, atol=atol)
        scale = atol + rtol * np.abs(np.asarray(ref.ys))
        assert (np.abs(ys[i] - np.asarray(ref.ys)) / scale).max() <= 10, f"trajectory {i}"
    on_c = sciml.solve_ensemble(f, y0s, t_span, args=params, backend="c", saveat=grid, rtol=rtol, atol=atol)
    np.testing.assert_array_equal(ens.status.get(), np.asarray(on_c.status))
    if dtype == np.float64:  # the GPU contracts a*b+c into FMAs, so only nearly the same steps in float32
        np.testing.assert_array_equal(ens.stats["naccept"].get(), np.asarray(on_c.stats["naccept"]))


@pytest.mark.skipif(not JAX_ON_GPU, reason="JAX has no GPU backend here")
def test_jax_device_arrays_stay_on_the_gpu():
    f, y0s, t_span, params = PROBLEMS["lorenz"](np.float32)
    ens = sciml.solve_ensemble(f, jnp.asarray(y0s), t_span, args=jnp.asarray(params), backend="cupy")
    assert isinstance(ens.y_final, jax.Array)
    assert all(d.platform == "gpu" for d in ens.y_final.devices())
    on_c = sciml.solve_ensemble(f, y0s, t_span, args=params, backend="c")
    np.testing.assert_allclose(np.asarray(ens.y_final), np.asarray(on_c.y_final), rtol=1e-4, atol=1e-4)


def test_host_inputs_give_jax_arrays():
    f, y0s, t_span, params = PROBLEMS["lotka_volterra"](np.float64)
    ens = sciml.solve_ensemble(f, y0s, t_span, args=params, backend="cupy")
    assert isinstance(ens.y_final, jax.Array) and ens.y_final.dtype == np.float64


def test_blowups_only_fail_themselves_on_the_gpu():
    ks = np.array([0.5, 2.0, 1.0, np.nan, 0.8, 5.0])
    healthy = np.array([True, False, True, False, True, False])
    ens = sciml.solve_ensemble(blowup, np.ones((6, 1)), (0.0, 0.9), args=ks, backend="cupy", rtol=1e-8, atol=1e-8)
    on_c = sciml.solve_ensemble(blowup, np.ones((6, 1)), (0.0, 0.9), args=ks, backend="c", rtol=1e-8, atol=1e-8)
    np.testing.assert_array_equal(np.asarray(ens.status), np.asarray(on_c.status))
    np.testing.assert_array_equal(np.asarray(ens.success), healthy)
    np.testing.assert_allclose(np.asarray(ens.y_final)[healthy, 0], blowup_exact(0.9, 1.0, ks[healthy]), rtol=1e-6)


def test_rodas5p_on_the_gpu():
    def rober(t, y, k):
        return jnp.stack([-k[0] * y[0] + k[2] * y[1] * y[2], k[0] * y[0] - k[2] * y[1] * y[2] - k[1] * y[1] ** 2,
                          k[1] * y[1] ** 2])

    ks = np.array([0.04, 3e7, 1e4]) * np.linspace(0.5, 1.5, 8)[:, None]
    y0s = np.tile([1.0, 0.0, 0.0], (8, 1))
    kw = dict(solver=S.Rodas5P(), rtol=1e-6, atol=1e-10)
    ens = sciml.solve_ensemble(rober, y0s, (0.0, 1e4), args=ks, backend="cupy", **kw)
    on_c = sciml.solve_ensemble(rober, y0s, (0.0, 1e4), args=ks, backend="c", **kw)
    np.testing.assert_array_equal(np.asarray(ens.status), 0)
    np.testing.assert_allclose(np.asarray(ens.y_final), np.asarray(on_c.y_final), rtol=1e-5, atol=1e-9)


def test_a_large_ensemble_is_one_launch_with_every_trajectory_solved():
    n = 1 << 16
    rho = np.linspace(0.0, 21.0, n, dtype=np.float32)
    params = np.stack([np.full(n, 10.0, np.float32), rho, np.full(n, 8.0 / 3.0, np.float32)], axis=1)
    y0s = np.tile(np.array([1.0, 0.0, 0.0], np.float32), (n, 1))
    f = PROBLEMS["lorenz"](np.float32)[0]
    ens = sciml.solve_ensemble(f, cupy.asarray(y0s), (0.0, 1.0), args=cupy.asarray(params), backend="cupy",
                               adaptive=False, dt0=1e-3)
    assert int((ens.status != 0).sum()) == 0
    picks = np.array([0, n // 3, n - 1])
    on_c = sciml.solve_ensemble(f, y0s[picks], (0.0, 1.0), args=params[picks], backend="c", adaptive=False, dt0=1e-3)
    np.testing.assert_allclose(ens.y_final.get()[picks], np.asarray(on_c.y_final), rtol=1e-3, atol=1e-3)
