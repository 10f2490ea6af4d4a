"""BDF in the generated C kernel (`sciml/kernel/_kernel_bdf.py`): a NumPy field's `solve_ivp(method="BDF")`.

Oracle: the XLA loop's BDF (tested against scipy in tests/solvers/test_stiff*.py) with the same NumPy field
as a host call, which the kernel restates step for step: the same accepted and rejected steps, the same
Jacobians and factorisations, states equal to rounding. ``nfev`` on both paths counts every call of
``fun``, the finite-difference Jacobians' included; the kernel makes one call fewer per Jacobian (its first
Newton iterate reuses the evaluation at the prediction that the Jacobian's differences start from). Also:
scipy's BDF (``local_tolerance=1`` takes its steps; at rtol 1e-10 the error is about rtol), expm for the
heat equation, and ``backend="jax"`` for a translated field in ``backend="c"``.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp as scipy_solve_ivp
from scipy.linalg import expm

import sciml
import sciml._callback_field as callback_field
from sciml import solvers as S
from tests.solvers.stiff_problems import PROBLEMS
from tests.test_solve_ivp_callback import HEAT_TS, HEAT_Y0, heat, heat_matrix

SPANS = {"rober": 1e4, "vdp": 300.0}


def numpy_field(name, dtype):
    p = PROBLEMS[name]
    args = np.asarray(p.args, dtype)
    return lambda t, y: np.asarray(p.f(t, y, args, xp=np), dtype)


def heat_field(dtype):
    return lambda t, y: heat(t, y).astype(dtype)


def case(name, dtype):
    """``(fun, keywords)`` of one problem: every step recorded (t_eval=None) and its dense output."""
    rtol = 1e-6 if dtype == np.float64 else 1e-4
    if name == "heat":
        return heat_field(dtype), dict(t_span=(0.0, HEAT_TS[-1]), y0=HEAT_Y0.astype(dtype), rtol=rtol,
                                       atol=rtol * 1e-3)
    p = PROBLEMS[name]
    return numpy_field(name, dtype), dict(t_span=(0.0, SPANS[name]), y0=p.y0.astype(dtype), rtol=rtol,
                                          atol=rtol * p.floor.astype(dtype))


@functools.lru_cache(maxsize=None)
def solved(name, dtype, xla):
    """One solve per case (shared by the tests): the kernel, or the XLA loop with the field as a host call
    (the kernel path switched off)."""
    fun, kw = case(name, dtype)
    saved = callback_field.solve_python_field
    if xla:
        callback_field.solve_python_field = lambda *a, **k: None
    try:
        return sciml.solve_ivp(fun, method="BDF", dense_output=True, **kw)
    finally:
        callback_field.solve_python_field = saved


CASES = [(name, dtype) for name in ("rober", "vdp", "heat") for dtype in (np.float64, np.float32)]


@pytest.mark.parametrize("name, dtype", CASES, ids=[f"{n}-{np.dtype(d).name}" for n, d in CASES])
def test_the_kernel_takes_the_xla_loops_steps(name, dtype):
    kernel, xla = solved(name, dtype, False), solved(name, dtype, True)
    assert kernel.success and xla.success
    assert kernel.y.dtype == xla.y.dtype == dtype and kernel.t.dtype == xla.t.dtype
    # the same accepted steps (every step is recorded), Jacobians and factorisations; a Newton iteration
    # may end one round apart where its carried eta (after an exactly converged solve: rounding) decides
    # (float32: XLA's and C's rounding differ by more than the step-size choice can absorb over ROBER's
    # thousands of steps at rtol 1e-4, so there the counts agree in size and the states to the tolerance)
    if dtype == np.float64:
        assert len(kernel.t) == len(xla.t), (len(kernel.t), len(xla.t))
        assert kernel.njev == xla.njev and kernel.nlu == xla.nlu
        assert abs(kernel.nfev - (xla.nfev - xla.njev)) <= 2
    else:
        assert abs(len(kernel.t) - len(xla.t)) <= 0.2 * len(xla.t), (len(kernel.t), len(xla.t))
    floor = PROBLEMS[name].floor if name in PROBLEMS else 1e-3
    if dtype == np.float64:
        # step sizes come from norms of the highest differences, where cancellation lifts rounding (XLA's
        # sums vs C's) to ~1e-8 on ROBER; the steps and states still agree far below the tolerances
        np.testing.assert_allclose(kernel.t, xla.t, rtol=1e-6)
        gap = np.abs(kernel.y - xla.y) / (np.abs(xla.y) + floor[:, None] if np.ndim(floor) else np.abs(xla.y) + floor)
        assert gap.max() <= 1e-7, gap.max()
        # dense output between steps: the same step polynomials
        mid = 0.5 * (kernel.t[1:] + kernel.t[:-1])
        np.testing.assert_allclose(kernel.sol(mid), xla.sol(mid), rtol=1e-7, atol=1e-7 * np.max(np.abs(xla.y)))
    else:
        gap = np.abs(kernel.y[:, -1] - xla.y[:, -1]) / (np.abs(xla.y[:, -1]) + floor)
        assert gap.max() <= 10 * 1e-4, gap.max()


def test_heat_equation_against_expm():
    res = sciml.solve_ivp(heat, (0.0, HEAT_TS[-1]), HEAT_Y0, method="BDF", t_eval=HEAT_TS, rtol=1e-10, atol=1e-13)
    exact = np.stack([expm(heat_matrix() * t) @ HEAT_Y0 for t in HEAT_TS], axis=1)
    err = np.max(np.abs(res.y - exact)) / np.max(np.abs(exact))
    assert res.success and err <= 10 * 1e-10, err
    # scipy's BDF at the same tolerances ends further away (its local error is held to rtol, not 0.05 rtol)
    peer = scipy_solve_ivp(heat, (0.0, HEAT_TS[-1]), HEAT_Y0, method="BDF", t_eval=HEAT_TS, rtol=1e-10, atol=1e-13)
    assert err <= np.max(np.abs(peer.y - exact)) / np.max(np.abs(exact))


@pytest.mark.parametrize("name", ["rober", "heat"])
def test_local_tolerance_one_steps_as_scipy(name):
    fun, kw = case(name, np.float64)
    ours = sciml.solve_ivp(fun, method=S.BDF(local_tolerance=1.0), **kw)
    peer = scipy_solve_ivp(fun, method="BDF", **kw)
    assert ours.success and peer.success
    assert abs(len(ours.t) - len(peer.t)) <= 0.05 * len(peer.t) + 2, (len(ours.t), len(peer.t))
    assert ours.njev <= peer.njev + 2


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_a_translated_field_in_the_c_backend_equals_the_xla_loop(dtype):
    p = PROBLEMS["rober"]
    rtol = 1e-6 if dtype == np.float64 else 1e-4
    ts = np.array([0.0, 1.0, 100.0, 1e4], dtype)
    sols = [sciml.solve(p.f, jnp.asarray(p.y0, dtype), (0.0, 1e4), args=jnp.asarray(p.args, dtype),
                        solver=S.BDF(), saveat=ts, rtol=rtol, atol=rtol * p.floor.astype(dtype), backend=b)
            for b in ("jax", "c")]
    assert sols[1].ys.dtype == dtype
    # Newton's first-iterate test uses eta carried from the last solve, which after an exactly converged
    # one is rounding: an iteration more or less here and there (nfev), never a different step
    for key in ("naccept", "nreject", "njev", "nlu"):
        assert abs(int(sols[1].stats[key]) - int(sols[0].stats[key])) <= (0 if dtype == np.float64 else 3), key
    assert abs(int(sols[1].stats["nfev"]) - int(sols[0].stats["nfev"])) <= 0.05 * int(sols[0].stats["nfev"])
    gap = np.abs(np.asarray(sols[1].ys, np.float64) - sols[0].ys) / (np.abs(sols[0].ys) + p.floor)
    assert gap.max() <= (1e-7 if dtype == np.float64 else 10 * rtol), gap.max()


@pytest.mark.parametrize("solver, match", [(S.BDF(linear_solver="gmres"), "gmres"),
                                           (S.BDF(mass_matrix=object()), "mass matrix")])
def test_options_the_kernel_does_not_run_are_named(solver, match):
    from sciml.kernel import solver_unserved
    from sciml.kernel._launch import kernel_method

    assert match in solver_unserved(solver)
    with pytest.raises(ValueError, match=f"(?s){match}.*backend=\"jax\""):
        kernel_method(solver)
