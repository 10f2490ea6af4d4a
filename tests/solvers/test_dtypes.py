"""Solves keep dtypes: float32 stays float32, float64 stays float64, complex stays complex.

The state is integrated in `result_type(y0, f(t0, y0, args))`; times keep the dtype of `t_span` when
given as arrays and otherwise follow the state's real dtype. Nothing is lowered.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sciml
from sciml import solvers as S


def decay(t, y, k):
    return -k * y


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("method", [S.Tsit5, S.Dopri8, S.Bosh3], ids=lambda m: m.__name__)
def test_real_state_keeps_its_dtype(dtype, method):
    y0 = jnp.array([1.0, 2.0], dtype)
    ts = jnp.linspace(0.0, 1.0, 5, dtype=dtype)
    tol = 1e-5 if dtype == jnp.float32 else 1e-10
    sol = sciml.solve(decay, y0, (0.0, 1.0), args=jnp.asarray(1.5, dtype), solver=method(), saveat=ts,
                      rtol=tol, atol=tol)
    assert sol.ys.dtype == dtype and sol.ts.dtype == dtype and sol.t_final.dtype == dtype
    assert all(v.dtype == jnp.int32 for v in sol.stats.values())
    expected = np.asarray(y0, np.float64)[None] * np.exp(-1.5 * np.asarray(ts, np.float64))[:, None]
    np.testing.assert_allclose(np.asarray(sol.ys, np.float64), expected, rtol=20 * tol)


def test_float32_state_with_float64_times_keeps_both():
    sol = sciml.solve(decay, jnp.array([1.0], jnp.float32), (jnp.float64(0.0), jnp.float64(1.0)),
                      args=jnp.float32(1.0), saveat=jnp.array([0.5, 1.0], jnp.float64))
    assert sol.ys.dtype == jnp.float32
    assert sol.ts.dtype == jnp.float64 and sol.t_final.dtype == jnp.float64


def test_float64_args_promote_a_float32_state_rather_than_being_truncated():
    sol = sciml.solve(decay, jnp.array([1.0], jnp.float32), (0.0, 1.0), args=jnp.float64(2.0),
                      rtol=1e-10, atol=1e-10)
    assert sol.ys.dtype == jnp.float64
    np.testing.assert_allclose(float(sol.ys[-1, 0]), np.exp(-2.0), rtol=1e-9)


def test_mixed_precision_pytree_is_integrated_in_the_wider_dtype():
    y0 = {"a": jnp.array([1.0], jnp.float32), "b": jnp.array([1.0], jnp.float64)}
    sol = sciml.solve(lambda t, y, a: {"a": -y["a"], "b": -2 * y["b"]}, y0, (0.0, 1.0), rtol=1e-10,
                      atol=1e-10)
    assert sol.ys["a"].dtype == jnp.float64 and sol.ys["b"].dtype == jnp.float64
    np.testing.assert_allclose(float(sol.ys["a"][-1, 0]), np.exp(-1.0), rtol=1e-9)


def _schrodinger_hamiltonian():
    rng = np.random.default_rng(3)
    m = rng.normal(size=(3, 3)) + 1j * rng.normal(size=(3, 3))
    return (m + m.conj().T) / 2


@pytest.mark.parametrize("dtype", [jnp.complex64, jnp.complex128])
def test_complex_schrodinger_matches_the_exact_propagator(dtype):
    H = _schrodinger_hamiltonian()
    psi0 = np.array([1.0, 0.5j, -0.25], np.complex128)
    psi0 /= np.linalg.norm(psi0)
    ts = np.linspace(0.0, 2.0, 6)
    lam, V = np.linalg.eigh(H)
    exact = np.stack([V @ (np.exp(-1j * lam * t) * (V.conj().T @ psi0)) for t in ts])
    tol = 1e-5 if dtype == jnp.complex64 else 1e-10
    sol = sciml.solve(lambda t, psi, H: -1j * (H @ psi), jnp.asarray(psi0, dtype), (0.0, 2.0),
                      args=jnp.asarray(H, dtype), saveat=jnp.asarray(ts), rtol=tol, atol=tol)
    assert sol.ys.dtype == dtype
    np.testing.assert_allclose(np.asarray(sol.ys), exact, atol=50 * tol)
    # Unitary evolution: the norm is conserved to tolerance (the imaginary part was not dropped).
    np.testing.assert_allclose(np.linalg.norm(np.asarray(sol.ys), axis=1), 1.0, atol=50 * tol)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_gradients_keep_the_dtype_of_the_inputs(dtype):
    def loss(k, y0):
        sol = sciml.solve(decay, y0, (0.0, 1.0), args=k, saveat=jnp.array([0.5, 1.0], dtype),
                          rtol=1e-6, atol=1e-6)
        return jnp.sum(sol.ys ** 2)

    gk, gy = jax.grad(loss, argnums=(0, 1))(jnp.asarray(0.7, dtype), jnp.array([1.0, -1.0], dtype))
    assert gk.dtype == dtype and gy.dtype == dtype
    k = 0.7
    exact_gk = sum(-2 * t * np.exp(-2 * k * t) * 2 for t in (0.5, 1.0))
    np.testing.assert_allclose(float(gk), exact_gk, rtol=1e-4 if dtype == jnp.float32 else 1e-6)
