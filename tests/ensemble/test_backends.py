"""`sciml.solve_ensemble` on the CPU backends ("jax", "c"): trajectory i is `sciml.solve` of trajectory i.

The oracle is `sciml.solve` run on each trajectory alone, with the same method and tolerances: the
kernel restates the same algorithm, so the two agree to rounding (well inside the tolerance) and, in
float64, take exactly the same steps. Blow-ups are checked against the exact solution.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sciml
import sciml.solvers as S
from sciml.solvers import Status
from tests.ensemble.problems import N, PROBLEMS, blowup, blowup_exact, saveat, tolerances

CPU_BACKENDS = ["c", "jax"]
DTYPES = [np.float64, np.float32]
DTYPE_IDS = ["float64", "float32"]


@functools.lru_cache(maxsize=None)
def _reference(problem, dtype, solver=S.Tsit5(), final=False):
    """Each trajectory solved alone by `sciml.solve`: (ts, ys, naccept, status) stacked."""
    f, y0s, t_span, params = PROBLEMS[problem](dtype)
    rtol, atol = tolerances(dtype)
    grid = None if final else saveat(t_span, dtype)
    sols = [sciml.solve(f, y0s[i], t_span, args=params[i], solver=solver, saveat=grid, rtol=rtol, atol=atol)
            for i in range(N)]
    return (np.stack([s.ts for s in sols]), np.stack([s.ys for s in sols]),
            np.array([int(s.stats["naccept"]) for s in sols]), np.array([int(s.status) for s in sols]))


def _within_tolerance(got, want, dtype, factor=10.0):
    rtol, atol = tolerances(dtype)
    err = np.abs(np.asarray(got, np.float64) - want) / (atol + rtol * np.abs(want))
    assert err.max() <= factor, f"differs by {err.max():.3g} x (atol + rtol |y|)"


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("problem", list(PROBLEMS))
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_each_trajectory_agrees_with_sciml_solve(backend, problem, dtype):
    f, y0s, t_span, params = PROBLEMS[problem](dtype)
    rtol, atol = tolerances(dtype)
    ens = sciml.solve_ensemble(f, y0s, t_span, args=params, backend=backend, saveat=saveat(t_span, dtype),
                               rtol=rtol, atol=atol)
    ts, ys, naccept, status = _reference(problem, dtype)
    assert ens.backend == backend and len(ens) == N
    assert ens.ys.shape == ys.shape and ens.ys.dtype == dtype and ens.ts.dtype == dtype
    assert ens.y_final.dtype == dtype and ens.status.dtype == jnp.int32
    np.testing.assert_array_equal(ens.status, status)
    np.testing.assert_allclose(ens.ts, ts)
    _within_tolerance(ens.ys, ys, dtype)
    np.testing.assert_allclose(ens.y_final, ys[:, -1], rtol=10 * rtol, atol=10 * atol)
    if dtype == np.float64:  # the same algorithm takes the same steps
        np.testing.assert_array_equal(ens.stats["naccept"], naccept)
    assert set(ens.stats) == {"nfev", "naccept", "nreject"}


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_final_state_only_with_vern7(backend):
    f, y0s, t_span, params = PROBLEMS["lorenz"](np.float64)
    rtol, atol = tolerances(np.float64)
    ens = sciml.solve_ensemble(f, y0s, t_span, args=params, backend=backend, solver=S.Vern7(), rtol=rtol, atol=atol)
    ts, ys, naccept, _ = _reference("lorenz", np.float64, S.Vern7(), final=True)
    assert ens.ts.shape == (N, 1) and ens.ys.shape == (N, 1, 3)
    np.testing.assert_allclose(ens.t_final, 1.0)
    _within_tolerance(ens.ys, ys, np.float64)
    np.testing.assert_array_equal(ens.stats["naccept"], naccept)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_fixed_steps_match_sciml_solve_and_count(backend, dtype):
    f, y0s, t_span, params = PROBLEMS["lotka_volterra"](dtype)
    grid = saveat(t_span, dtype)
    ens = sciml.solve_ensemble(f, y0s, t_span, args=params, backend=backend, solver=S.RK4(), adaptive=False,
                               dt0=0.01, saveat=grid)
    for i in (0, N - 1):
        ref = sciml.solve(f, y0s[i], t_span, args=params[i], solver=S.RK4(), adaptive=False, dt0=0.01, saveat=grid)
        np.testing.assert_allclose(ens.ys[i], ref.ys, rtol=1e-12 if dtype == np.float64 else 1e-5)
    assert ens.ys.dtype == dtype
    np.testing.assert_array_equal(ens.stats["naccept"], 500)
    np.testing.assert_array_equal(ens.stats["nfev"], 1 + 4 * 500)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_blowups_fail_alone_and_the_rest_are_untouched(backend):
    # y' = k y^2 from y0 = 1 blows up at t = 1/k: k > 1/0.9 fails inside t_span, and k = NaN at once.
    ks = np.array([0.5, 2.0, 1.0, np.nan, 0.8, 5.0])
    y0s = np.ones((6, 1))
    ens = sciml.solve_ensemble(blowup, y0s, (0.0, 0.9), args=ks, backend=backend, rtol=1e-8, atol=1e-8)
    healthy = np.array([True, False, True, False, True, False])
    for i, k in enumerate(ks):
        ref = sciml.solve(blowup, y0s[i], (0.0, 0.9), args=k, rtol=1e-8, atol=1e-8, throw=False)
        assert int(ens.status[i]) == int(ref.status), f"trajectory {i}"
    assert int(ens.status[3]) == Status.NONFINITE
    assert all(int(s) in (Status.DT_UNDERFLOW, Status.NONFINITE, Status.MAX_STEPS) for s in ens.status[~healthy])
    np.testing.assert_allclose(ens.y_final[healthy, 0], blowup_exact(0.9, 1.0, ks[healthy]), rtol=1e-6)
    alone = sciml.solve_ensemble(blowup, y0s[healthy], (0.0, 0.9), args=ks[healthy], backend=backend,
                                 rtol=1e-8, atol=1e-8)
    np.testing.assert_array_equal(ens.y_final[healthy], alone.y_final)
    np.testing.assert_array_equal(np.asarray(ens.success), healthy)
    assert ens.t_final[1] < 0.5 + 1e-6 and ens.t_final[5] < 0.2 + 1e-6  # stopped at the singularity
    messages = ens.message()
    assert messages[0] == "The solve reached t1 successfully."
    assert "underflowed" in messages[1] or "non-finite" in messages[1]
    with pytest.raises(sciml.SolveError, match=r"3 of 6 trajectories failed; the first \(index 1\)"):
        ens.raise_if_failed()


def test_max_steps_is_a_status_per_trajectory():
    f, y0s, t_span, params = PROBLEMS["lorenz"](np.float64)
    ens = sciml.solve_ensemble(f, y0s, t_span, args=params, backend="c", max_steps=30, rtol=1e-9, atol=1e-9)
    ref = [sciml.solve(f, y0s[i], t_span, args=params[i], max_steps=30, rtol=1e-9, atol=1e-9, throw=False)
           for i in range(N)]
    np.testing.assert_array_equal(ens.status, [int(r.status) for r in ref])
    assert Status.MAX_STEPS in set(np.asarray(ens.status).tolist())
    with pytest.raises(sciml.SolveError, match="max_steps=30"):
        sciml.solve_ensemble(f, y0s, t_span, args=params, backend="c", max_steps=30, rtol=1e-9, atol=1e-9,
                             throw=True)


def _spring(t, y, args):
    k, damping = args
    return {"x": y["v"], "v": -k * y["x"] - damping * y["v"]}


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_pytree_states_mixed_args_and_backward_time(backend):
    # Per-trajectory stiffness k (batched) and one damping shared by all: args_axes=(0, None).
    ks = np.linspace(1.0, 4.0, 4)
    y0s = {"x": np.ones((4, 2)), "v": np.zeros((4, 2))}
    grid = np.array([1.0, 0.5, 0.25])
    for t_span in ((0.0, 1.0), (1.0, 0.0)):
        ens = sciml.solve_ensemble(_spring, y0s, t_span, args=(ks, 0.1), args_axes=(0, None), backend=backend,
                                   saveat=grid if t_span[0] > t_span[1] else grid[::-1], rtol=1e-9, atol=1e-9)
        for i in (0, 3):
            y0 = jax.tree_util.tree_map(lambda x: x[i], y0s)
            ref = sciml.solve(_spring, y0, t_span, args=(ks[i], 0.1), saveat=grid if t_span[0] > t_span[1]
                              else grid[::-1], rtol=1e-9, atol=1e-9)
            for key in ("x", "v"):
                assert ens.ys[key].shape == (4, 3, 2)
                np.testing.assert_allclose(ens.ys[key][i], ref.ys[key], rtol=1e-8, atol=1e-10)


def test_float32_parameters_as_python_numbers_keep_a_float32_state():
    y0s = np.ones((3, 1), np.float32)
    ens = sciml.solve_ensemble(lambda t, y, k: -k * y, y0s, (0.0, 1.0), args=2.0, args_axes=None, backend="c")
    assert ens.ys.dtype == np.float32
    np.testing.assert_allclose(ens.y_final[:, 0], np.exp(-2.0), rtol=1e-5)


def test_the_jax_backend_is_differentiable_and_the_kernels_say_they_are_not():
    f, y0s, t_span, params = PROBLEMS["lotka_volterra"](np.float64)

    def loss(p, backend="jax"):
        ens = sciml.solve_ensemble(f, y0s, t_span, args=p, backend=backend, rtol=1e-10, atol=1e-10)
        return jnp.sum(ens.y_final ** 2)

    grad = jax.grad(loss)(jnp.asarray(params))
    step = np.zeros_like(params)
    step[2, 1] = 1e-6
    central = (loss(params + step) - loss(params - step)) / 2e-6
    np.testing.assert_allclose(grad[2, 1], central, rtol=1e-5)
    with pytest.raises(TypeError, match="cannot be used inside `jax.jit`.*backend=\"jax\""):
        jax.grad(loss)(jnp.asarray(params), "c")


# -- errors -----------------------------------------------------------------------------------------
def test_batched_args_must_have_one_entry_per_trajectory():
    with pytest.raises(ValueError, match=r"`args\[1\]` has shape \(\).*args_axes=None"):
        sciml.solve_ensemble(_spring, {"x": np.ones((4, 2)), "v": np.ones((4, 2))}, (0.0, 1.0), args=(np.ones(4), 0.1))
    with pytest.raises(ValueError, match="pytree prefix of `args`"):
        sciml.solve_ensemble(_spring, {"x": np.ones((4, 2)), "v": np.ones((4, 2))}, (0.0, 1.0),
                             args=(np.ones(4), 0.1), args_axes=(0, None, None))


def test_argument_errors_name_the_fix():
    f, y0s, t_span, params = PROBLEMS["lorenz"](np.float64)
    with pytest.raises(ValueError, match="`backend` must be one of"):
        sciml.solve_ensemble(f, y0s, t_span, args=params, backend="gpu")
    with pytest.raises(ValueError, match="Drop `mesh`"):
        sciml.solve_ensemble(f, y0s, t_span, args=params, backend="c", mesh=object())
    with pytest.raises(ValueError, match="saveat"):
        sciml.solve_ensemble(f, y0s, t_span, args=params, saveat="steps")
    with pytest.raises(ValueError, match="leading trajectory axis"):
        sciml.solve_ensemble(f, np.float64(1.0), t_span, args=params)
    with pytest.raises(sciml.ensemble.UnsupportedDtypeError, match="backend=\"jax\""):
        sciml.solve_ensemble(lambda t, y, a: -y, np.ones((2, 1), np.complex128), t_span, backend="c")


def test_an_untranslatable_vector_field_names_the_primitive_and_backend_jax():
    def loop(t, y, a):
        return jax.lax.while_loop(lambda v: v[0] < 10.0, lambda v: 2.0 * v, y)

    with pytest.raises(sciml.ensemble.UnsupportedPrimitiveError, match=r"`while`.*backend=\"jax\""):
        sciml.solve_ensemble(loop, np.ones((2, 1)), (0.0, 1.0), backend="c")


def test_cupy_backend_without_cupy_or_gpu_points_to_c_and_jax():
    pytest.importorskip("numpy")
    try:
        import cupy  # noqa: F401
        if cupy.cuda.runtime.getDeviceCount() > 0:
            pytest.skip("a GPU is present; tests/gpu covers backend=\"cupy\"")
    except Exception:  # no CuPy, or CuPy without a driver: the case under test
        pass
    with pytest.raises(sciml.ensemble.BackendUnavailableError, match=r"backend=\"c\".*backend=\"jax\""):
        sciml.solve_ensemble(lambda t, y, a: -y, np.ones((2, 1)), (0.0, 1.0), backend="cupy")


def test_no_c_compiler_points_to_backend_jax(monkeypatch):
    from sciml.kernel import _build as _c_backend

    _c_backend.compiler.cache_clear()
    monkeypatch.setenv("CC", "/nonexistent/cc")
    try:
        with pytest.raises(sciml.ensemble.CompilerNotFoundError, match="backend=\"jax\""):
            _c_backend.compiler()
    finally:
        _c_backend.compiler.cache_clear()
