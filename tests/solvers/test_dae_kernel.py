"""Mass-matrix problems ``M y' = f`` on the generated C kernel (`backend="c"`, and `"auto"`, which picks it):
Rodas5P with ``M - h gamma J`` and ``M`` in its stage right-hand sides, consistent initialisation in JAX
before the launch.

Oracles: the XLA loop (`backend="jax"`), which the kernel restates step for step (same accepted and
rejected steps, values equal to rounding in float64, close in float32); the exact solution
``expm(M^{-1} A t) y0`` of a linear problem with a full non-singular ``M``; the algebraic equation itself.
"""

import functools

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import sciml
from sciml import solvers as S
from sciml.solvers._status import Status
from tests.solvers.test_dae import FULL_A, FULL_M, LIN_M, ROBER_FLOOR, ROBER_K, ROBER_M, linear_dae, rober_dae

Y0_FULL = np.array([1.0, 0.5, -0.3])


def linear(t, y, a):
    return a @ y


def rober_call(dtype):
    rtol = 1e-7 if dtype == np.float64 else 1e-4
    return dict(f=rober_dae, y0=jnp.array([1.0, 0.0, 0.3], dtype), t_span=(0.0, 1e5), args=jnp.asarray(ROBER_K, dtype),
                saveat=jnp.array([1e-3, 1.0, 1e3, 1e5], dtype), rtol=rtol, atol=jnp.asarray(rtol * ROBER_FLOOR, dtype),
                mass_matrix=ROBER_M, max_steps=5000)


def full_call(dtype):
    return dict(f=linear, y0=jnp.asarray(Y0_FULL, dtype), t_span=(0.0, 1.0), args=jnp.asarray(FULL_A, dtype),
                saveat=jnp.array([0.5, 1.0], dtype), rtol=1e-8 if dtype == np.float64 else 1e-5,
                atol=1e-10 if dtype == np.float64 else 1e-7, mass_matrix=FULL_M)


CALLS = {"rober-dae": rober_call, "full-M": full_call}


@functools.lru_cache(maxsize=None)
def solved(name, dtype, backend):
    call = CALLS[name](dtype)
    return sciml.solve(call.pop("f"), call.pop("y0"), call.pop("t_span"), solver=S.Rodas5P(), backend=backend,
                       throw=False, **call)


def _ints(stats):
    return {k: int(v) for k, v in stats.items() if k != "init_residual"}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", list(CALLS))
def test_the_kernel_is_the_jax_solve_of_a_mass_matrix_problem(name, dtype):
    c, j = solved(name, dtype, "c"), solved(name, dtype, "jax")
    assert c.ys.dtype == j.ys.dtype == dtype
    assert int(c.status) == int(j.status) == Status.SUCCESS
    if dtype == np.float64:   # the same steps, values equal to rounding
        assert _ints(c.stats) == _ints(j.stats)
        if name == "full-M":
            np.testing.assert_allclose(c.ys, j.ys, rtol=1e-10)
        else:   # ROBER amplifies rounding: its ODE form too differs by ~1e-8 between the two backends
            np.testing.assert_allclose(c.ys, j.ys, rtol=5e-8)
    else:                     # float32 rounding may move a step: close, at the tolerance's scale
        assert abs(int(c.stats["naccept"]) - int(j.stats["naccept"])) <= max(1, 0.1 * int(j.stats["naccept"]))
        floor = ROBER_FLOOR if name == "rober-dae" else 1.0
        np.testing.assert_array_less(np.abs(np.asarray(c.ys) - np.asarray(j.ys)) / (np.abs(np.asarray(j.ys)) + floor),
                                     2e-3)
    if name == "rober-dae":   # initialised in JAX before the launch: y3 = 1 - y1 - y2 from 0.3, then kept
        assert bool(c.stats["init_adjusted"]) and float(c.stats["init_residual"]) == float(j.stats["init_residual"])
        assert float(jnp.max(jnp.abs(jnp.sum(c.ys, axis=1) - 1.0))) < (1e-12 if dtype == np.float64 else 1e-5)
    else:                     # the exact solution
        exact = [scipy.linalg.expm(np.linalg.solve(FULL_M, FULL_A) * t) @ Y0_FULL for t in (0.5, 1.0)]
        np.testing.assert_allclose(c.ys, exact, atol=1e-8 if dtype == np.float64 else 1e-4)
    if dtype == np.float64:
        np.testing.assert_array_equal(solved(name, dtype, "auto").ys, c.ys)   # "auto" (the default) picks the kernel


def test_two_mass_matrices_never_share_a_kernel():
    # M is part of the kernel's source (its entries as literals), hence of its cache key: 2 M must solve
    # 2 M y' = A y, whose solution is expm(M^{-1} A t / 2) y0, right after M's kernel was built and run.
    call = full_call(np.float64)
    for scale in (1.0, 2.0):
        call["mass_matrix"] = scale * FULL_M
        sol = sciml.solve(call["f"], call["y0"], call["t_span"], args=call["args"], solver=S.Rodas5P(), rtol=1e-8,
                          atol=1e-10, mass_matrix=scale * FULL_M, backend="c")
        exact = scipy.linalg.expm(np.linalg.solve(scale * FULL_M, FULL_A)) @ Y0_FULL
        np.testing.assert_allclose(sol.ys[-1], exact, atol=1e-8)


A_ENS = jnp.array([0.5, 2.0, 4.0])
TS = np.linspace(0.0, 1.0, 6)


@functools.lru_cache(maxsize=None)
def ensemble(backend, init, dtype=np.float64):
    # trajectory 1 starts off its algebraic equation u1 = -a u0 (0.5 != -4); the others on it
    u0s = jnp.array([[1.0, -0.5], [2.0, 0.5], [0.5, -2.0]], dtype)
    tol = dict(rtol=1e-9, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-7)
    return sciml.solve_ensemble(linear_dae, u0s, (0.0, 1.0), args=A_ENS.astype(dtype), solver=S.Rodas5P(), saveat=TS,
                                mass_matrix=LIN_M.astype(dtype), init=init, backend=backend, **tol)


@pytest.mark.parametrize("init", ["solve", "check"])
def test_a_dae_ensemble_on_the_kernel_is_each_trajectorys_jax_solve(init):
    c, j = ensemble("c", init), ensemble("jax", init)
    expected = [0, 0 if init == "solve" else Status.INCONSISTENT_INIT, 0]   # only the inconsistent one fails
    np.testing.assert_array_equal(c.status, expected)
    np.testing.assert_array_equal(j.status, expected)
    assert set(c.stats) == set(j.stats)
    for key in c.stats:
        np.testing.assert_allclose(c.stats[key], j.stats[key], rtol=1e-10, err_msg=key)
    np.testing.assert_array_equal(c.stats["init_adjusted"], [False, init == "solve", False])
    np.testing.assert_allclose(c.ys, j.ys, rtol=1e-10, atol=1e-14)
    assert "not consistent" in c.message()[1] if init == "check" else c.message() == j.message()
    if init == "solve":   # the exact solution u0 = u0(0) exp(-(1 + a) t), u1 = -a u0
        u0 = np.array([1.0, 2.0, 0.5])[:, None] * np.exp(-(1.0 + np.asarray(A_ENS))[:, None] * TS)
        np.testing.assert_allclose(c.ys, np.stack([u0, -np.asarray(A_ENS)[:, None] * u0], -1), rtol=1e-7, atol=1e-12)


def test_a_float32_dae_ensemble_on_the_kernel_stays_float32_and_close():
    c, j = ensemble("c", "solve", np.float32), ensemble("jax", "solve", np.float32)
    assert c.ys.dtype == j.ys.dtype == np.float32 and c.stats["init_residual"].dtype == np.float32
    np.testing.assert_array_equal(c.status, 0)
    np.testing.assert_allclose(c.ys, j.ys, rtol=1e-4, atol=1e-6)


def test_the_kernel_refuses_a_mass_matrix_with_a_method_it_cannot_give_one():
    with pytest.raises(ValueError, match=r"does not serve this solve: it takes a mass matrix with Rodas5P, not"):
        sciml.solve(linear, jnp.asarray(Y0_FULL), (0.0, 1.0), args=jnp.asarray(FULL_A), solver=S.Tsit5(),
                    mass_matrix=FULL_M, backend="c")
    with pytest.raises(ValueError, match=r"does not serve this ensemble: .*Rosenbrock23"):
        sciml.solve_ensemble(linear_dae, jnp.ones((2, 2)), (0.0, 1.0), args=jnp.ones(2), solver=S.Rosenbrock23(),
                             backend="c", mass_matrix=LIN_M)


def test_m_is_in_the_source_and_its_cache_key(tmp_path):
    # the kernel of M and that of 2 M are different libraries (`library_key` hashes the source), and the
    # source with M's literals compiles warning-free (gcc -Werror; the CUDA variant has the same body)
    from sciml._problem import prepare
    from sciml.kernel._build import library_key
    from sciml.kernel._codegen import kernel_source
    from sciml.kernel._launch import prepare_launch
    from tests.ensemble.problems import assert_warning_free_c

    sources = []
    for scale in (1.0, 2.0):
        problem, options = prepare(rober_dae, jnp.array([[1.0, 0.0, 0.0]]), (0.0, 1.0), jnp.asarray(ROBER_K),
                                   args_axes=None, solver=S.Rodas5P(), mass_matrix=scale * ROBER_M, backend="c",
                                   ensemble=True)
        launch, _ = prepare_launch(problem, options, np, np.asarray)
        sources.append(kernel_source(launch.spec, launch.method, "c"))
    assert library_key(sources[0]) != library_key(sources[1])
    assert_warning_free_c(sources[0], tmp_path)
