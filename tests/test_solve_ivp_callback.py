"""`sciml.solve_ivp` with a field JAX cannot trace (NumPy, a Python `if` on t): the kernel's loop or the
XLA loop with the field called back. Oracles: analytic solutions, expm, scipy's DOP853 at rtol 1e-12."""

from __future__ import annotations

import traceback

import jax
import numpy as np
import pytest
from scipy.integrate import solve_ivp as scipy_solve_ivp
from scipy.linalg import expm

import sciml
from tests.ensemble.problems import assert_warning_free_c

P = np.array([1.5, 1.0, 3.0, 1.0])
TS = np.linspace(0.0, 10.0, 21)


def lotka_volterra(t, y, p):
    return np.array([p[0] * y[0] - p[1] * y[0] * y[1], p[2] * y[0] * y[1] - p[3] * y[1]])


def switched_decay(t, y):
    """y' = -y before t = 1, -2y after (a Python `if` on t): y = e^-t, then e^-1 e^-2(t-1)."""
    if t < 1.0:
        return -y
    return -2.0 * y


N_HEAT = 100
DX = 1.0 / (N_HEAT + 1)


def heat(t, y):
    """The 100-point second difference with zero boundaries, in NumPy (y' = A y)."""
    dy = np.empty_like(y)
    dy[1:-1] = (y[:-2] - 2.0 * y[1:-1] + y[2:]) / DX**2
    dy[0] = (-2.0 * y[0] + y[1]) / DX**2
    dy[-1] = (y[-2] - 2.0 * y[-1]) / DX**2
    return dy


def heat_matrix():
    return (np.diag(np.full(N_HEAT, -2.0)) + np.diag(np.ones(N_HEAT - 1), 1) + np.diag(np.ones(N_HEAT - 1), -1)) / DX**2


X = np.linspace(DX, 1.0 - DX, N_HEAT)
HEAT_Y0 = np.sin(np.pi * X) + 0.5 * np.sin(3 * np.pi * X)
HEAT_TS = np.linspace(0.0, 0.05, 6)


def test_numpy_lotka_volterra_matches_scipy_at_tight_tolerance():
    ref = scipy_solve_ivp(lotka_volterra, (0.0, 10.0), [1.0, 1.0], method="DOP853", t_eval=TS, args=(P,),
                          rtol=1e-12, atol=1e-12)
    res = sciml.solve_ivp(lotka_volterra, (0.0, 10.0), [1.0, 1.0], method="DOP853", t_eval=TS, args=(P,),
                          rtol=1e-10, atol=1e-10)
    assert res.success and res.y.dtype == np.float64
    np.testing.assert_allclose(res.y, ref.y, rtol=1e-8, atol=1e-8)
    assert res.nfev > 0


@pytest.mark.parametrize("method", ["DOP853", "Rodas5P"])
def test_every_step_and_dense_output_of_a_numpy_field(method):
    """scipy's default call (no `t_eval`) and `dense_output=True`, recorded by the kernel's loop."""
    ref = scipy_solve_ivp(lotka_volterra, (0.0, 10.0), [1.0, 1.0], method="DOP853", args=(P,), rtol=1e-13,
                          atol=1e-13, dense_output=True)
    res = sciml.solve_ivp(lotka_volterra, (0.0, 10.0), [1.0, 1.0], method=method, args=(P,), rtol=1e-9,
                          atol=1e-9, dense_output=True)
    assert res.success and res.t[0] == 0.0 and res.t[-1] == 10.0 and len(res.t) > 10
    np.testing.assert_allclose(res.y, ref.sol(res.t), atol=1e-6)
    ts = np.linspace(0.0, 10.0, 41)
    np.testing.assert_allclose(res.sol(ts), ref.sol(ts), atol=1e-6)
    np.testing.assert_allclose(res.sol(res.t), res.y, atol=1e-12)   # the interpolant passes through the steps


def test_python_if_on_t_matches_the_analytic_solution():
    ts = np.linspace(0.0, 3.0, 13)
    res = sciml.solve_ivp(switched_decay, (0.0, 3.0), [1.0, 2.0], method="RK45", t_eval=ts, rtol=1e-10, atol=1e-12)
    exact = np.where(ts < 1.0, np.exp(-ts), np.exp(-1.0) * np.exp(-2.0 * (ts - 1.0)))
    # the kink at t = 1 costs the step control some accuracy: 1e-7, not 1e-10
    np.testing.assert_allclose(res.y, np.stack([exact, 2 * exact]), rtol=1e-7)


def test_list_return_and_float32_are_kept():
    def field(t, y):
        return [-0.5 * y[0], np.float32(-1.0) * y[1]]

    res = sciml.solve_ivp(field, (0.0, 2.0), np.array([1.0, 2.0], np.float32), t_eval=[0.0, 1.0, 2.0],
                          rtol=1e-5, atol=1e-7)
    assert res.y.dtype == np.float32
    np.testing.assert_allclose(res.y[0], np.exp(-0.5 * np.array([0.0, 1.0, 2.0])), rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["Rodas5P", "BDF"])
def test_numpy_heat_equation_with_stiff_methods(method):
    exact = np.stack([expm(heat_matrix() * t) @ HEAT_Y0 for t in HEAT_TS], axis=1)
    res = sciml.solve_ivp(heat, (0.0, HEAT_TS[-1]), HEAT_Y0, method=method, t_eval=HEAT_TS, rtol=1e-7, atol=1e-10)
    assert res.success and res.njev >= 1
    np.testing.assert_allclose(res.y, exact, atol=1e-5 * np.abs(exact).max())


def test_vectorized_field_gives_the_same_solution_with_fewer_calls():
    kwargs = dict(method="Rodas5P", t_eval=HEAT_TS, rtol=1e-6, atol=1e-9)
    plain = sciml.solve_ivp(heat, (0.0, HEAT_TS[-1]), HEAT_Y0, **kwargs)
    vec = sciml.solve_ivp(heat, (0.0, HEAT_TS[-1]), HEAT_Y0, vectorized=True, **kwargs)  # heat takes (n, k) too
    np.testing.assert_allclose(vec.y, plain.y, rtol=1e-6, atol=1e-9)
    assert vec.nfev < plain.nfev / 5   # one call per finite-difference Jacobian instead of n + 1


def test_jac_and_jac_sparsity_serve_a_numpy_field():
    pattern = (np.abs(heat_matrix()) > 0).astype(int)
    exact = expm(heat_matrix() * HEAT_TS[-1]) @ HEAT_Y0
    kwargs = dict(method="Rodas5P", t_eval=HEAT_TS[-1:], rtol=1e-7, atol=1e-10)
    plain = sciml.solve_ivp(heat, (0.0, HEAT_TS[-1]), HEAT_Y0, **kwargs)
    sparse = sciml.solve_ivp(heat, (0.0, HEAT_TS[-1]), HEAT_Y0, jac_sparsity=pattern, **kwargs)
    exact_jac = sciml.solve_ivp(heat, (0.0, HEAT_TS[-1]), HEAT_Y0, jac=lambda t, y: heat_matrix(), **kwargs)
    for res in (plain, sparse, exact_jac):
        np.testing.assert_allclose(res.y[:, -1], exact, atol=1e-5 * np.abs(exact).max())
    # per Jacobian: n + 1 calls, 3 colours + 1, or 1 (df/dt)
    assert sparse.nfev < plain.nfev / 5 and exact_jac.nfev < sparse.nfev


@pytest.mark.parametrize("method", ["BDF", "Radau"])   # the kernel; the XLA loop with `fun` as a host call
def test_nfev_counts_every_call_of_fun_the_jacobians_included(method):
    calls = []

    def stiff_linear(t, y):
        calls.append(t)
        return np.array([-1000.0 * y[0] + y[1], -y[1]])

    def solve():
        return sciml.solve_ivp(stiff_linear, (0.0, 1.0), np.array([1.0, 1.0]), method=method, rtol=1e-3, atol=1e-6)

    solve()         # a new field is traced once and probed for its dtype: calls outside any solve's count
    calls.clear()
    res = solve()
    assert res.success and res.njev >= 1
    assert res.nfev == len(calls)


def test_a_thousand_state_numpy_field_runs_in_every_stiff_kernel():
    """Their n x n matrices (8 MB each at n = 1000) are kept off the stack, which they would overflow."""
    def decay(t, y):
        return -np.asarray(y)

    for method in ("Rodas5P", "ROS34PW2", "BDF", "Radau"):
        res = sciml.solve_ivp(decay, (0.0, 1e-3), np.ones(1000), method=method, rtol=1e-3, atol=1e-6)
        assert res.success and res.nfev > 1000   # one finite-difference Jacobian: the kernel's path
        np.testing.assert_allclose(res.y[:, -1], np.exp(-1e-3), rtol=1e-5)


class FieldError(RuntimeError):
    pass


def failing_field(t, y):
    if t > 0.5:
        raise FieldError(f"bad t={t}")
    return -y


def rotation(t, y, fail):
    if fail and t > 0.5:
        raise FieldError(f"bad t={t}")
    return 1j * y


def test_an_exception_in_the_field_reaches_the_caller_with_its_traceback():
    with pytest.raises(FieldError, match="bad t=") as info:   # a real state: the kernel
        sciml.solve_ivp(failing_field, (0.0, 1.0), [1.0], t_eval=[0.0, 1.0])
    assert "failing_field" in [frame.name for frame in traceback.extract_tb(info.tb)]


def test_a_complex_numpy_field_runs_in_the_xla_loop_and_raises_there_too():
    """The kernel is real-only: a complex state runs the XLA loop with `fun` as a callback."""
    res = sciml.solve_ivp(rotation, (0.0, 2.0), np.array([1.0 + 0j]), t_eval=[1.0, 2.0], args=(False,),
                          rtol=1e-10, atol=1e-12)
    assert res.y.dtype == np.complex128
    np.testing.assert_allclose(res.y[0], np.exp(1j * np.array([1.0, 2.0])), rtol=1e-8)
    with pytest.raises(FieldError, match="bad t=") as info:   # the same compiled program
        sciml.solve_ivp(rotation, (0.0, 2.0), np.array([1.0 + 0j]), t_eval=[1.0, 2.0], args=(True,))
    assert "rotation" in [frame.name for frame in traceback.extract_tb(info.tb)]


def test_the_field_is_traced_once_then_called_back_directly():
    traced = []

    def field(t, y):
        traced.append(isinstance(y, jax.core.Tracer))
        return np.array([-y[0]])   # NumPy: cannot be traced

    counts = []
    for _ in range(3):
        res = sciml.solve_ivp(field, (0.0, 1.0), [1.0], t_eval=[1.0], rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(res.y[0], [np.exp(-1.0)], rtol=1e-7)
        counts.append(sum(traced))
    assert counts[0] >= 1 and counts[2] == counts[0]   # traced in the first call only


def test_backend_jax_names_the_fix_for_a_numpy_field():
    with pytest.raises(TypeError, match='backend="auto"'):
        sciml.solve_ivp(lotka_volterra, (0.0, 1.0), [1.0, 1.0], args=(P,), t_eval=[1.0], backend="jax")


def test_events_and_dense_output_of_a_numpy_field():
    """Located on the host from each step's dense output, as the XLA loop locates them."""
    def fall(t, y):
        return np.array([y[1], -9.81])

    def ground(t, y):
        return y[0]

    ground.terminal, ground.direction = True, -1
    res = sciml.solve_ivp(fall, (0.0, 5.0), [10.0, 0.0], events=ground, dense_output=True, rtol=1e-9, atol=1e-9)
    t_hit = np.sqrt(2 * 10.0 / 9.81)
    assert res.status == 1
    np.testing.assert_allclose(res.t_events[0], [t_hit], rtol=1e-7)
    np.testing.assert_allclose(res.sol(1.0)[0], 10.0 - 9.81 / 2, rtol=1e-7)
    np.testing.assert_allclose(res.t[-1], t_hit, rtol=1e-7)
    np.testing.assert_allclose(res.y[:, -1], [0.0, -9.81 * t_hit], atol=1e-6)


def test_a_terminal_count_and_a_direction_as_on_the_traced_path():
    import jax.numpy as jnp

    def lv_jnp(t, y, p):
        return jnp.stack([p[0] * y[0] - p[1] * y[0] * y[1], p[2] * y[0] * y[1] - p[3] * y[1]])

    def predator(t, y, p):
        return y[1] - 1.0

    def prey(t, y, p):
        return y[0] - 0.8

    prey.terminal, prey.direction = 2, -1
    kwargs = dict(args=(P,), events=[predator, prey], rtol=1e-9, atol=1e-9, method="RK45")
    ours = sciml.solve_ivp(lotka_volterra, (0.0, 10.0), [1.0, 1.0], **kwargs)
    traced = sciml.solve_ivp(lv_jnp, (0.0, 10.0), [1.0, 1.0], **kwargs)
    assert ours.status == traced.status == 1
    # predator starts exactly at 1.0 and leaves it: a crossing at t0, as scipy counts it (3 with scipy too)
    assert [len(a) for a in ours.t_events] == [len(b) for b in traced.t_events] == [3, 2]
    # the same method and control; rounding differs (XLA vs NumPy arithmetic), which the error estimate
    # (a difference of near-equal stages) amplifies to ~1e-7 in the step sizes, not in the solution
    for a, b in zip(ours.t_events + ours.y_events, traced.t_events + traced.y_events):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-8)
    assert len(ours.t) == len(traced.t) and ours.t[-1] == ours.t_events[1][-1]   # stopped at the 2nd crossing


@pytest.mark.parametrize("solver", ["Tsit5", "Dopri8", "Rodas5P", "ROS34PW2"])
def test_the_callback_kernel_is_warning_free_c(solver, tmp_path):
    from sciml.kernel._callback import host_spec
    from sciml.kernel._codegen import kernel_source
    from sciml.solvers._control import PIController

    spec, method = host_spec(getattr(sciml.solvers, solver)(), PIController(), 3, "<f8", "<f8", True, True, True)
    assert_warning_free_c(kernel_source(spec, method, "c-single"), tmp_path)
