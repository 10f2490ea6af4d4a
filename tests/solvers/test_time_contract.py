"""The time and dtype contract of the pipeline, and the checks that hold under ``jit``:

- the field sees ``t`` in the state's real dtype, whatever dtype the times were given in, so every case
  that solves forward also differentiates, and gradients keep the parameters' dtypes;
- traced save times that are unsorted, outside ``t_span`` or not finite give a failure status (never
  a success with wrong values);
- ``f`` is never evaluated outside ``[t0, t1]``, whatever the first-step guess would have liked.

Oracle: ``y' = -k cos(t) y`` has ``y(t) = y0 exp(-k (sin t - sin t0))`` and ``dy/dk = -(sin t - sin t0) y``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sciml
from sciml import adjoints as A
from sciml.solvers import Status


def field(t, y, k):
    return -k * jnp.cos(t) * y


def exact(ts, k):
    return np.exp(-k * np.sin(ts))


TIME_KINDS = {"python": lambda x, d: float(x), "float32": lambda x, d: jnp.float32(x),
              "float64": lambda x, d: jnp.float64(x)}


def _loss(adjoint, state_dtype, t_kind, saveat_dtype):
    y0 = jnp.ones(2, state_dtype)
    t0, t1 = (TIME_KINDS[t_kind](v, state_dtype) for v in (0.0, 1.5))
    ts = jnp.linspace(0.0, 1.5, 4).astype(saveat_dtype)

    def loss(k):
        sol = sciml.solve(field, y0, (t0, t1), args=k, saveat=ts, adjoint=adjoint, rtol=1e-7, atol=1e-7)
        return jnp.sum(sol.ys), sol

    return loss, np.asarray(ts, np.float64)


CASES = [(s, t, v) for s in ("float32", "float64") for t in TIME_KINDS for v in ("float32", "float64")]


MATRIX = [(A.Direct(), *c) for c in CASES] + [(A.Forward(), *c) for c in CASES if c[0] != c[2]]


@pytest.mark.parametrize("adjoint, state, t_kind, saveat", MATRIX,
                         ids=[f"{type(a).__name__}-{'-'.join(c)}" for a, *c in MATRIX])
def test_every_time_dtype_solves_and_differentiates(adjoint, state, t_kind, saveat):
    loss, ts = _loss(adjoint, jnp.dtype(state), t_kind, jnp.dtype(saveat))
    k = jnp.asarray(0.7, state)
    (value, sol), grad = jax.value_and_grad(loss, has_aux=True)(k)
    assert sol.ys.dtype == jnp.dtype(state) and grad.dtype == jnp.dtype(state)
    tol = 1e-4 if state == "float32" else 1e-6
    np.testing.assert_allclose(np.asarray(sol.ys[:, 0], np.float64), exact(ts, 0.7), rtol=tol)
    np.testing.assert_allclose(float(grad), 2 * np.sum(-np.sin(ts) * exact(ts, 0.7)), rtol=10 * tol)


@pytest.mark.slow
@pytest.mark.parametrize("adjoint", [A.Backsolve(), A.Interpolating(), A.Quadrature(), A.Auto()],
                         ids=["Backsolve", "Interpolating", "Quadrature", "Auto"])
def test_a_float32_state_with_float64_times_differentiates_with_every_adjoint(adjoint):
    loss, ts = _loss(adjoint, jnp.float32, "float64", jnp.float64)
    grad = jax.grad(lambda k: loss(k)[0])(jnp.float32(0.7))
    assert grad.dtype == jnp.float32
    np.testing.assert_allclose(float(grad), 2 * np.sum(-np.sin(ts) * exact(ts, 0.7)), rtol=1e-3)


# -- checks that hold under jit -----------------------------------------------------------------------
@jax.jit
def _solve_at(ts):
    return sciml.solve(field, jnp.ones(1), (0.0, 1.0), args=0.5, saveat=ts, throw=False, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("ts", [[0.9, 0.1, 0.5], [0.2, np.nan, 0.8], [0.2, 0.5, 1.5], [-0.5, 0.5, 0.9]],
                         ids=["unsorted", "nan", "past t1", "before t0"])
def test_traced_bad_save_times_fail_with_their_own_status(ts):
    sol = _solve_at(jnp.asarray(ts))
    assert int(sol.status) == Status.BAD_SAVEAT and np.all(np.isnan(sol.ys))
    assert "save times" in sol.message() and "sorted" in sol.message()


def test_traced_good_save_times_still_solve():
    sol = _solve_at(jnp.asarray([0.1, 0.5, 0.9]))
    assert int(sol.status) == Status.SUCCESS
    np.testing.assert_allclose(sol.ys[:, 0], exact(np.array([0.1, 0.5, 0.9]), 0.5), rtol=1e-6)


def test_throw_raises_for_traced_bad_save_times():
    run = jax.jit(lambda ts: sciml.solve(field, jnp.ones(1), (0.0, 1.0), args=0.5, saveat=ts).ys)
    with pytest.raises(Exception, match="save times"):
        jax.block_until_ready(run(jnp.asarray([0.9, 0.1, 0.5])))


def test_an_ensemble_reports_bad_save_times_per_trajectory_under_jit():
    run = jax.jit(lambda ts: sciml.solve_ensemble(field, jnp.ones((2, 1)), (0.0, 1.0), args=jnp.array([0.5, 1.0]),
                                                  saveat=ts).status)
    np.testing.assert_array_equal(run(jnp.asarray([0.5, 0.1])), [Status.BAD_SAVEAT] * 2)


# -- f is never evaluated outside [t0, t1] ------------------------------------------------------------
def _outside_nan(t, y, a):
    inside = (t >= -17.0) & (t <= 2.0)
    return jnp.where(inside, -y, jnp.nan)


@pytest.mark.parametrize("max_step", [None, 0.03])
def test_the_first_step_guess_stays_inside_the_span(max_step):
    seen = []

    def recorded(t, y, a):
        jax.debug.callback(lambda t: seen.append(float(t)), t)
        return _outside_nan(t, y, a)

    sol = sciml.solve(recorded, jnp.ones(1), (-17.0, 2.0), max_step=max_step, backend="jax", rtol=1e-8, atol=1e-10)
    assert -17.0 <= min(seen) and max(seen) <= 2.0
    np.testing.assert_allclose(sol.ys[-1, 0], np.exp(-19.0), rtol=1e-6, atol=1e-10)


def test_the_kernel_takes_the_same_first_step():
    kernel = sciml.solve(_outside_nan, jnp.ones(1), (-17.0, 2.0), max_step=0.03, backend="c")
    xla = sciml.solve(_outside_nan, jnp.ones(1), (-17.0, 2.0), max_step=0.03, backend="jax")
    assert {k: int(v) for k, v in kernel.stats.items()} == {k: int(v) for k, v in xla.stats.items()}
    np.testing.assert_allclose(kernel.ys, xla.ys, rtol=1e-12)


def test_a_field_nan_outside_the_span_solves_as_diffrax_solves_it():
    import diffrax

    # atol far below y(2) = 5.6e-9, so that both solves are accurate to about rtol
    sol = sciml.solve(_outside_nan, jnp.ones(1), (-17.0, 2.0), rtol=1e-8, atol=1e-16, backend="jax")
    theirs = diffrax.diffeqsolve(diffrax.ODETerm(_outside_nan), diffrax.Tsit5(), -17.0, 2.0, None, jnp.ones(1),
                                 None, stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-16))
    assert sol.status == Status.SUCCESS
    np.testing.assert_allclose(sol.ys[-1], theirs.ys[-1], rtol=1e-6)
    np.testing.assert_allclose(sol.ys[-1, 0], np.exp(-19.0), rtol=1e-6)


@pytest.mark.parametrize("method", ["RK45", "Rodas5P", "BDF"])
def test_a_python_field_that_raises_outside_the_span_is_never_called_there(method):
    """The NumPy-field paths (the kernel's callback loop for RK45/Rodas5P, the XLA loop's callbacks for
    BDF): the first step, the finite-difference Jacobian's time step and the dense output stay inside."""
    def guarded(t, y):
        if not -17.0 <= t <= 2.0:
            raise AssertionError(f"f called at t={t}")
        return -np.asarray(y)

    res = sciml.solve_ivp(guarded, (-17.0, 2.0), [1.0], method=method, rtol=1e-8, atol=1e-16, max_step=0.5)
    assert res.success, res.message
    np.testing.assert_allclose(res.y[0, -1], np.exp(-19.0), rtol=1e-5)


@pytest.mark.parametrize("backend", ["jax", "c"])
def test_a_purely_relative_tolerance_at_a_zero_component_solves(backend):
    """``atol=0`` with a component that starts at 0: the first-step guess used to divide by its zero
    error scale (dt=NaN, then max_steps and a stiffness hint)."""
    w = jnp.array([[-0.3, 1.1], [-0.9, -0.2]])
    sol = sciml.solve(lambda t, y, a: w @ y, jnp.array([0.0, 1.0]), (0.0, 1.0), rtol=1e-10, atol=0.0, backend=backend)
    np.testing.assert_allclose(sol.ys[-1], jax.scipy.linalg.expm(np.asarray(w)) @ np.array([0.0, 1.0]), rtol=1e-8)
