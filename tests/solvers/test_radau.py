"""RadauIIA5 on its own: measured order 5 (non-stiff and stiff linear), its collocation dense output,
complex states, Newton failures, its coefficients, forward-mode gradients and the place its stage
equations keep for a constant mass matrix.

The stiff test set, ROBER's dense output, events, stats and float32, the Prothero-Robinson order and
the Direct gradient run it through the shared stiff tests (``S.STIFF``); the C backend's refusal is in
``test_backend.py``. Oracles: exact solutions (``expm`` of linear systems), central finite
differences (``test_stiff_gradients.py``).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import sciml
from sciml import adjoints as A
from sciml import solvers as S
from sciml.solvers import _radau_coefficients as R
from tests.solvers.stiff_problems import PROBLEMS
from tests.solvers.test_stiff import no_root
from tests.solvers.test_stiff_gradients import LOG_K, finite_differences, loss_fn

T1 = 2.0
STEPS = [4, 8, 16, 32]
#: points between the steps of every grid above (the midpoints of the finest)
BETWEEN = (np.arange(STEPS[-1]) + 0.5) * T1 / STEPS[-1]
_Q = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))[0]
# Non-stiff: a damped rotation (eigenvalues -0.1 +- 2i) and a decay (-0.5); stiff: eigenvalues -1, -1e3,
# -1e6. Both in a random orthogonal basis, so every component sees every mode.
NONSTIFF_A = _Q @ np.array([[-0.1, -2.0, 0.0], [2.0, -0.1, 0.0], [0.0, 0.0, -0.5]]) @ _Q.T
STIFF_A = _Q @ np.diag([-1.0, -1e3, -1e6]) @ _Q.T
Y0 = np.array([1.0, 0.5, -0.3])


def linear(t, y, a):
    return a @ y


def slope(errors):
    return np.polyfit(np.log([T1 / n for n in STEPS]), np.log(errors), 1)[0]


@jax.jit
def fixed_steps(dt, a):
    """Fixed steps on y' = a y: the state at T1 and the dense output at `BETWEEN` (one compile for all)."""
    sol = sciml.solve(linear, jnp.asarray(Y0), (0.0, T1), args=a, solver=S.RadauIIA5(), adaptive=False, dt0=dt,
                      saveat="dense", rtol=1e-8, atol=1e-8, max_steps=64)
    return sol.y_final, sol.evaluate(jnp.asarray(BETWEEN)), sol.stats["naccept"]


def exact(a, t):
    return np.stack([scipy.linalg.expm(a * s) @ Y0 for s in np.atleast_1d(t)])


def measured_orders(a):
    """Slopes of the error at T1 and of the dense output's error between the steps."""
    errors, dense_errors = [], []
    for n in STEPS:
        y, between, taken = fixed_steps(T1 / n, jnp.asarray(a))
        assert int(taken) == n
        errors.append(np.max(np.abs(np.asarray(y) - exact(a, T1)[0])))
        dense_errors.append(np.max(np.abs(np.asarray(between) - exact(a, BETWEEN))))
    assert min(errors) > 5e-14, errors           # above round-off, so the slope means something
    return slope(errors), slope(dense_errors), errors, dense_errors


def test_measured_order_is_five_on_a_non_stiff_problem_and_dense_output_is_order_four():
    order, dense_order, errors, dense_errors = measured_orders(NONSTIFF_A)
    assert abs(order - 5) <= 0.2, (order, errors)
    # The collocation polynomial has degree 3 and stage order 3: O(h^4) between the steps, at least (4.3 here,
    # where the step errors, of order 5, are still a visible part of it).
    assert dense_order >= 3.8, (dense_order, dense_errors)


def test_measured_order_is_five_on_a_stiff_linear_problem():
    order, _, errors, _ = measured_orders(STIFF_A)   # h |lambda|_max from 5e5 down to 6e4
    assert abs(order - 5) <= 0.2, (order, errors)


# A complex stiff system: y' = L y, L with eigenvalues -1 + 5i, -2e3 + 40i, -1e5 in a random unitary basis.
_U = np.linalg.qr(np.random.default_rng(2).normal(size=(3, 3)) + 1j * np.random.default_rng(3).normal(size=(3, 3)))[0]
COMPLEX_L = _U @ np.diag([-1.0 + 5.0j, -2e3 + 40j, -1e5]) @ _U.conj().T
COMPLEX_Y0 = np.array([1.0 + 0.5j, -0.3j, 0.2])


@pytest.mark.parametrize("dtype, rtol", [(jnp.complex128, 1e-8), (jnp.complex64, 1e-4)], ids=["c128", "c64"])
def test_complex_state_keeps_its_dtype_and_matches_expm(dtype, rtol):
    sol = sciml.solve(linear, jnp.asarray(COMPLEX_Y0, dtype), (0.0, T1), args=jnp.asarray(COMPLEX_L, dtype),
                      solver=S.RadauIIA5(), rtol=rtol, atol=rtol)
    assert sol.ys.dtype == dtype
    exact = scipy.linalg.expm(COMPLEX_L * T1) @ COMPLEX_Y0
    assert np.max(np.abs(np.asarray(sol.ys[-1]) - exact)) <= 10 * rtol
    # A complex state factors three matrices (real-eigenvalue system, the pair and its conjugate).
    assert int(sol.stats["nlu"]) % 3 == 0 and int(sol.stats["nlu"]) > 0


def test_newton_that_never_converges_ends_as_newton_failed_with_a_message():
    sol = sciml.solve(no_root, jnp.array([0.0]), (1.0, 2.0), solver=S.RadauIIA5(), throw=False)
    assert int(sol.status) == sciml.Status.NEWTON_FAILED
    assert float(sol.t_final) == 1.0 and int(sol.stats["naccept"]) == 0
    assert "Newton iteration kept failing at t=1 " in sol.message()


def test_a_first_step_too_long_for_newton_is_retried_shorter():
    p = PROBLEMS["rober"]
    sol = sciml.solve(p.f, jnp.asarray(p.y0), (0.0, 40.0), args=jnp.asarray(p.args), solver=S.RadauIIA5(), dt0=20.0,
                      rtol=1e-6, atol=1e-6 * jnp.asarray(p.floor))
    assert sol.success and int(sol.stats["nreject"]) > 0
    # scipy's counting: a real and a complex LU per factorisation, three f evaluations per Newton iteration
    assert int(sol.stats["nlu"]) % 2 == 0 and 0 < int(sol.stats["njev"]) < int(sol.stats["naccept"])


def test_forward_sensitivities_match_finite_differences():
    grad = jax.jit(jax.grad(loss_fn(S.RadauIIA5(), A.Forward(), 1e-8)))(jnp.asarray(LOG_K))
    assert grad.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(grad), finite_differences(), rtol=1e-5)


def test_auto_adjoint_chooses_a_method_that_takes_it():
    small, _ = A.Auto().choose(PROBLEMS["rober"].f, jnp.ones(3), jnp.ones(3), S.RadauIIA5())
    assert isinstance(small, A.Forward)
    events, _ = A.Auto().choose(None, jnp.ones(200), None, S.RadauIIA5(), events=True)
    assert isinstance(events, A.Direct)     # a one-step method: Direct replays its steps


def test_coefficients_are_those_of_radau_iia5():
    # the real eigenvalue of A^{-1} and the complex pair, as printed in RADAU5 (U1 and ALPH +- i BETA)
    u1 = 30.0 / (6.0 + 81.0 ** (1 / 3) - 9.0 ** (1 / 3))
    alpha = (12.0 - 81.0 ** (1 / 3) + 9.0 ** (1 / 3)) / 60.0
    beta = (81.0 ** (1 / 3) + 9.0 ** (1 / 3)) * np.sqrt(3.0) / 60.0
    cno = alpha ** 2 + beta ** 2
    assert abs(R.GAMMA - u1) < 1e-12
    assert abs(R.MU - complex(alpha / cno, beta / cno)) < 1e-12


def test_stage_equations_take_a_constant_mass_matrix():
    # M y' = f with M = 2 I is y' = f / 2: the same step, stages, error estimate and polynomial.
    solver, t, dt, y = S.RadauIIA5(), jnp.asarray(0.0), jnp.asarray(0.05), jnp.array([1.0, -0.5])

    def f(t, y):
        return jnp.array([-y[0] + jnp.sin(t), -50.0 * (y[1] - y[0] ** 2)])

    def half(t, y):
        return f(t, y) / 2

    def attempt(field, mass):
        f0 = field(t, y)
        state = solver.bind_tolerances(solver.init(field, t, y, f0, dt), 1e-8, 1e-8)
        return solver._step(field, t, y, f0, dt, state, mass=mass)

    with_mass, plain = jax.jit(lambda: (attempt(f, 2.0 * jnp.eye(2)), attempt(half, None)))()
    for a, b in ((with_mass.y1, plain.y1), (with_mass.y_err, plain.y_err), (with_mass.info, plain.info)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-14)
    assert bool(with_mass.ok) and bool(plain.ok)
