"""Dense output: `sol.evaluate(t)` between steps is as accurate as the solution at the steps.

For each method the dense error (at points between steps) must be of the same order as the error at
the steps themselves: within a factor 10 (Hermite methods) against an exact solution.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sciml
from sciml import solvers as S
from tests.solvers.problems import ROTATION_Y0, rotation, rotation_exact

EPS = 0.25
T1 = 6.0
ADAPTIVE = [m for m in S.ALL if m().adaptive]
# RadauIIA5 superconverges at the steps (order 5; here 1e-2 of rtol) while its collocation polynomial is
# O(h^4) between them (stage order 3): ~25x here, both below rtol. Its dense order: tests/solvers/test_radau.py.
BETWEEN_FACTOR = {S.RadauIIA5: 100}


@pytest.mark.parametrize("method", ADAPTIVE, ids=lambda m: m.__name__)
def test_error_between_steps_is_of_the_order_of_the_error_at_steps(method):
    sol = sciml.solve(rotation, jnp.asarray(ROTATION_Y0), (0.0, T1), args=EPS, solver=method(),
                      saveat="dense", rtol=1e-7, atol=1e-7)
    ts = np.asarray(sol.ts)
    assert ts[0] == 0.0 and ts[-1] == T1 and np.all(np.diff(ts) > 0)
    at_steps = np.max(np.abs(np.asarray(sol.ys) - rotation_exact(ts, EPS)))
    mids = 0.5 * (ts[1:] + ts[:-1])
    quarter = ts[:-1] + 0.27 * np.diff(ts)
    between = np.concatenate([mids, quarter])
    dense = np.asarray(sol.evaluate(jnp.asarray(between)))
    err_between = np.max(np.abs(dense - rotation_exact(between, EPS)))
    assert err_between <= BETWEEN_FACTOR.get(method, 10) * max(at_steps, 1e-9), (method.__name__, err_between, at_steps)


def test_evaluate_reproduces_the_steps_and_is_vectorised_and_jittable():
    sol = sciml.solve(rotation, jnp.asarray(ROTATION_Y0), (0.0, T1), args=EPS, saveat="dense",
                      rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(np.asarray(sol.evaluate(sol.ts)), np.asarray(sol.ys), atol=1e-12)
    grid = jnp.linspace(0.0, T1, 12).reshape(3, 4)
    values = jax.jit(sol.evaluate)(grid)
    assert values.shape == (3, 4, 2)
    np.testing.assert_allclose(np.asarray(values), rotation_exact(np.asarray(grid), EPS), atol=1e-6)


def test_dense_output_of_a_pytree_state_has_its_structure():
    def f(t, y, args):
        return {"x": y["v"], "v": -y["x"]}

    sol = sciml.solve(f, {"x": jnp.array(1.0), "v": jnp.array(0.0)}, (0.0, 3.0), saveat="dense",
                      rtol=1e-9, atol=1e-9)
    out = sol.evaluate(jnp.array([0.5, 2.5]))
    np.testing.assert_allclose(np.asarray(out["x"]), np.cos([0.5, 2.5]), atol=1e-7)
    np.testing.assert_allclose(np.asarray(out["v"]), -np.sin([0.5, 2.5]), atol=1e-7)


def test_dense_output_backwards_in_time():
    sol = sciml.solve(lambda t, y, a: -y, jnp.array([1.0]), (2.0, 0.0), saveat="dense", rtol=1e-9,
                      atol=1e-9)
    t = jnp.array([1.7, 1.0, 0.3])
    np.testing.assert_allclose(np.asarray(sol.evaluate(t))[:, 0], np.exp(2.0 - np.asarray(t)), rtol=1e-7)


def test_evaluate_needs_dense_output():
    sol = sciml.solve(lambda t, y, a: -y, jnp.array([1.0]), (0.0, 1.0))
    with pytest.raises(ValueError, match='saveat="dense"'):
        sol.evaluate(0.5)


def test_saveat_points_are_interpolated_not_stepped_to():
    f = lambda t, y, a: -y  # noqa: E731
    few = sciml.solve(f, jnp.array([1.0]), (0.0, 10.0), rtol=1e-6, atol=1e-6)
    many = sciml.solve(f, jnp.array([1.0]), (0.0, 10.0), saveat=jnp.linspace(0.0, 10.0, 1001),
                       rtol=1e-6, atol=1e-6)
    assert int(many.stats["naccept"]) == int(few.stats["naccept"])
    assert int(many.stats["nfev"]) == int(few.stats["nfev"])
    np.testing.assert_allclose(np.asarray(many.ys)[:, 0], np.exp(-np.linspace(0, 10, 1001)), atol=2e-6)


@pytest.mark.parametrize("method", [m for m in S.ALL if getattr(m(), "dense_degree", None) is not None],
                         ids=lambda m: m.__name__)
def test_a_stated_dense_degree_is_the_degree_dense_returns(method):
    """The loop sizes its buffers from `dense_degree` without tracing a step; it must be the truth."""
    solver, y0, dt = method(), jnp.ones(3), jnp.asarray(0.1)
    f = lambda t, y: -y  # noqa: E731

    def coefficients():
        step = solver.step(f, 0.0, y0, y0, dt, solver.init(f, 0.0, y0, y0, dt))
        return solver.dense(f, 0.0, y0, dt, step.y1, y0, -step.y1 if step.f1 is None else step.f1, step.info)

    assert jax.eval_shape(coefficients).shape == (solver.dense_degree + 1, 3)


# -- the solved span: from t0 to t_final, both ends included; never extrapolated -------------------
def decay(t, y, args):
    return -y


@pytest.fixture(scope="module")
def forward():
    return sciml.solve(decay, jnp.array([1.0]), (0.0, 2.0), saveat="dense", rtol=1e-9, atol=1e-9)


@pytest.fixture(scope="module")
def backward():
    return sciml.solve(decay, jnp.array([1.0]), (2.0, 0.0), saveat="dense", rtol=1e-9, atol=1e-9)


def test_a_concrete_time_outside_the_span_raises_naming_it_and_the_span(forward):
    with pytest.raises(ValueError, match=r"t=2\.5 is outside the solved span from t0=0\.0 to t_final=2\.0"):
        forward.evaluate(2.5)
    with pytest.raises(ValueError, match=r"t\[1, 0\]=-0\.25 is outside .* or solve over a longer `t_span`"):
        forward.evaluate(jnp.array([[0.5, 1.0], [-0.25, 3.0]]))


def test_the_ends_of_the_span_are_inside(forward, backward):
    for sol, (t0, t1) in ((forward, (0.0, 2.0)), (backward, (2.0, 0.0))):
        ends = np.asarray(sol.evaluate(jnp.array([t0, t1])))[:, 0]
        np.testing.assert_allclose(ends, [1.0, float(sol.y_final[0])], rtol=1e-12)
        np.testing.assert_allclose(ends[1], np.exp(-2.0 if t1 > t0 else 2.0), rtol=1e-8)


def test_under_jit_times_outside_are_nan_and_inside_equal_the_eager_values(forward):
    t = jnp.array([-0.5, 0.0, 0.3, 1.7, 2.0, 2.0000001, jnp.inf, jnp.nan])
    inside = np.array([False, True, True, True, True, False, False, False])
    values = np.asarray(jax.jit(forward.evaluate)(t))[:, 0]
    assert np.all(np.isnan(values[~inside]))
    np.testing.assert_array_equal(values[inside], np.asarray(forward.evaluate(t[inside]))[:, 0])
    np.testing.assert_allclose(values[inside], np.exp(-np.asarray(t[inside])), rtol=1e-8)


def test_a_backward_solve_serves_its_span_from_t1_to_t0(backward):
    with pytest.raises(ValueError, match=r"t=2\.5 is outside the solved span from t0=2\.0 to t_final=0\.0"):
        backward.evaluate(2.5)
    with pytest.raises(ValueError, match=r"t=-0\.1 is outside"):
        backward.evaluate(-0.1)
    values = np.asarray(jax.jit(backward.evaluate)(jnp.array([2.5, 1.0, -0.1])))[:, 0]
    assert np.isnan(values[0]) and np.isnan(values[2])
    np.testing.assert_allclose(values[1], np.exp(1.0), rtol=1e-8)


@pytest.mark.parametrize("stop", ["event", "failure"])
def test_a_solve_that_stopped_early_serves_only_up_to_where_it_stopped(stop):
    if stop == "event":   # y = exp(-t) reaches 0.5 at t = ln 2
        kw = dict(events=[S.Event(lambda t, y, a: y[0] - 0.5, terminal=True)])
        why = "a terminal event stopped the solve there"
    else:
        kw = dict(max_steps=4, throw=False)
        why = "the solve failed there; see `sol.message()`"
    sol = sciml.solve(decay, jnp.array([1.0]), (0.0, 5.0), saveat="dense", rtol=1e-9, atol=1e-9, **kw)
    t_final = float(sol.t_final)
    assert 0.0 < t_final < 5.0
    if stop == "event":
        np.testing.assert_allclose(t_final, np.log(2.0), rtol=1e-6)
    beyond = (t_final + 5.0) / 2
    with pytest.raises(ValueError, match=re.escape(f"t={beyond} is outside the solved span from t0=0.0 to "
                                                   f"t_final={t_final} ({why})")):
        sol.evaluate(beyond)
    values = np.asarray(jax.jit(sol.evaluate)(jnp.array([t_final / 2, t_final, beyond])))[:, 0]
    np.testing.assert_allclose(values[:2], np.exp(-np.array([t_final / 2, t_final])), rtol=1e-6)
    assert np.isnan(values[2])


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_evaluate_keeps_the_dtype_inside_and_outside_the_span(dtype):
    sol = sciml.solve(decay, jnp.array([1.0], dtype), (0.0, 1.0), saveat="dense")
    eager = sol.evaluate(jnp.array([0.0, 0.5, 1.0], dtype))
    traced = jax.jit(sol.evaluate)(jnp.array([0.5, 1.5], dtype))
    assert eager.dtype == dtype and traced.dtype == dtype
    assert np.isfinite(np.asarray(traced[0])).all() and np.isnan(np.asarray(traced[1])).all()
    with pytest.raises(ValueError, match="outside the solved span"):
        sol.evaluate(jnp.array([1.5], dtype))
