"""Rodas5P on the kernel backends: a stiff ensemble (ROBER with per-trajectory rate constants) agrees with
`sciml.solve` per trajectory, with the same steps, Jacobians and factorisations in float64."""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
import pytest

import sciml
import sciml.solvers as S

N = 4


def rober(t, y, k):
    """Robertson's chemical kinetics (Hairer & Wanner II, Sec. IV.1): stiff, rates k spanning 1e-2..1e7."""
    return jnp.stack([-k[0] * y[0] + k[2] * y[1] * y[2],
                      k[0] * y[0] - k[2] * y[1] * y[2] - k[1] * y[1] ** 2,
                      k[1] * y[1] ** 2])


def _case(dtype):
    ks = (np.array([0.04, 3e7, 1e4]) * np.linspace(0.5, 1.5, N)[:, None]).astype(dtype)
    y0s = np.tile(np.array([1.0, 0.0, 0.0], dtype), (N, 1))
    tol = dict(rtol=1e-6, atol=1e-10) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-7)
    return ks, y0s, np.array([0.0, 1.0, 100.0, 1e4], dtype), tol


@functools.lru_cache(maxsize=None)
def _reference(dtype):
    ks, y0s, grid, tol = _case(dtype)
    sols = [sciml.solve(rober, y0s[i], (0.0, 1e4), args=ks[i], solver=S.Rodas5P(), saveat=grid, **tol)
            for i in range(N)]
    return np.stack([s.ys for s in sols]), {k: np.array([int(s.stats[k]) for s in sols]) for k in sols[0].stats}


# backend="jax" is `sciml.solve` itself under vmap (tested in test_backends.py);
# the kernel's Rosenbrock step is what needs the oracle here.
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("backend", ["c"])
def test_rodas5p_ensemble_agrees_with_sciml_solve(backend, dtype):
    ks, y0s, grid, tol = _case(dtype)
    ens = sciml.solve_ensemble(rober, y0s, (0.0, 1e4), args=ks, solver=S.Rodas5P(), saveat=grid, backend=backend,
                               **tol)
    ys, stats = _reference(dtype)
    assert ens.ys.dtype == dtype and ens.ys.shape == ys.shape
    np.testing.assert_array_equal(ens.status, 0)
    scale = tol["atol"] + tol["rtol"] * np.abs(ys)
    assert (np.abs(np.asarray(ens.ys, np.float64) - ys) / scale).max() <= 10
    np.testing.assert_allclose(np.asarray(ens.ys).sum(axis=-1), 1.0, rtol=10 * tol["rtol"])  # mass is conserved
    assert set(ens.stats) == set(stats)
    if dtype == np.float64:
        for key in ("naccept", "nreject", "nfev", "njev", "nlu"):
            np.testing.assert_array_equal(ens.stats[key], stats[key], err_msg=key)


def test_implicit_methods_without_a_kernel_point_to_backend_jax():
    with pytest.raises(ValueError, match=r"Kvaerno5.*backend=\"jax\""):
        sciml.solve_ensemble(rober, np.tile([1.0, 0.0, 0.0], (2, 1)), (0.0, 1.0), args=np.ones((2, 3)),
                             solver=S.Kvaerno5(), backend="c")
