"""Mass-matrix DAEs ``M y' = f``: ROBER in DAE form, an index-1 pendulum, a linear DAE with a known
solution, consistent initialisation, dense output, events, float32, jit/vmap, gradients, bad input.

Oracles: the ODE form of ROBER solved by scipy's Radau at rtol 1e-11 from t = 1e-5 to 1e10 (and the
stored stiff reference at t = 1e5); the pendulum's angle ODE solved by scipy at rtol 1e-12; the linear
DAE's exact solution; central finite differences for gradients. Every jitted function is shared by the
tests that use it.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate

import sciml
from sciml import adjoints as A
from sciml import solvers as S
from sciml.solvers._status import Status
from tests.solvers.stiff_problems import PROBLEMS, reference, relative_error

# -- ROBER: y3 = 1 - y1 - y2 as the algebraic equation ------------------------------------------------
ROBER_K = np.array([0.04, 3e7, 1e4])
ROBER_TS = np.array([1e-5, 1e-3, 1e-1, 1.0, 10.0, 1e3, 1e5, 1e7, 1e10])
AT_1E5 = 6
ROBER_FLOOR = np.array([1e-4, 1e-10, 1e-4])
ROBER_M = np.diag([1.0, 1.0, 0.0])
#: (solver, rtol, allowed relative error against the reference)
ROBER_SOLVERS = {"Rodas5P": (S.Rodas5P(), 1e-7, 1e-5), "RadauIIA5": (S.RadauIIA5(), 1e-7, 1e-5),
                 "BDF": (S.BDF(), 1e-7, 1e-5), "Rosenbrock23": (S.Rosenbrock23(), 1e-5, 1e-3)}


def rober_dae(t, y, k):
    return jnp.stack([-k[0] * y[0] + k[2] * y[1] * y[2], k[0] * y[0] - k[2] * y[1] * y[2] - k[1] * y[1] ** 2,
                      y[0] + y[1] + y[2] - 1.0])


@functools.lru_cache(maxsize=None)
def rober_reference() -> np.ndarray:
    """The ODE form at `ROBER_TS` (scipy Radau, rtol 1e-11, exact Jacobian)."""
    k = ROBER_K
    f = PROBLEMS["rober"].f

    def jac(t, y):
        return np.array([[-k[0], k[2] * y[2], k[2] * y[1]],
                         [k[0], -k[2] * y[2] - 2 * k[1] * y[1], -k[2] * y[1]],
                         [0.0, 2 * k[1] * y[1], 0.0]])

    sol = scipy.integrate.solve_ivp(lambda t, y: f(t, y, k, xp=np), (0.0, ROBER_TS[-1]), [1.0, 0.0, 0.0],
                                    method="Radau", t_eval=ROBER_TS, rtol=1e-11, atol=1e-11 * ROBER_FLOOR, jac=jac)
    return sol.y.T


@functools.lru_cache(maxsize=None)
def rober_solve(name):
    solver, rtol, _ = ROBER_SOLVERS[name]
    return jax.jit(lambda y0: sciml.solve(rober_dae, y0, (0.0, ROBER_TS[-1]), args=jnp.asarray(ROBER_K),
                                          solver=solver, saveat=jnp.asarray(ROBER_TS), rtol=rtol,
                                          atol=rtol * jnp.asarray(ROBER_FLOOR), mass_matrix=ROBER_M, throw=False,
                                          max_steps=5000))


@pytest.mark.parametrize("name", ["Rodas5P", pytest.param("RadauIIA5", marks=pytest.mark.slow),
                                  pytest.param("BDF", marks=pytest.mark.slow),
                                  pytest.param("Rosenbrock23", marks=pytest.mark.slow)])
def test_rober_dae_matches_the_ode_reference(name):
    # y0[2] = 0.3 is inconsistent: init="solve" sets it to 1 - y1 - y2 = 0
    sol = rober_solve(name)(jnp.array([1.0, 0.0, 0.3]))
    assert int(sol.status) == Status.SUCCESS
    assert bool(sol.stats["init_adjusted"]) and float(sol.stats["init_residual"]) < 1e-15
    ref, tol = rober_reference(), ROBER_SOLVERS[name][2]
    errors = [relative_error(sol.ys[i], ref[i], ROBER_FLOOR) for i in range(len(ROBER_TS))]
    assert max(errors) < tol, errors
    assert relative_error(sol.ys[AT_1E5], reference("rober"), ROBER_FLOOR) < tol
    # The algebraic equation holds at every save point.
    assert float(jnp.max(jnp.abs(jnp.sum(sol.ys, axis=1) - 1.0))) < 1e-12


# -- a linear DAE with a known solution: y' = -y + z, 0 = z + 2 y  =>  y = y0 exp(-3 t), z = -2 y ------
LIN_M = np.array([[1.0, 0.0], [0.0, 0.0]])


def linear_dae(t, u, a):
    return jnp.stack([-u[0] + u[1], u[1] + a * u[0]])


@functools.lru_cache(maxsize=None)
def linear_solve(init, solver=S.Rosenbrock23()):
    return jax.jit(lambda u0, a: sciml.solve(linear_dae, u0, (0.0, 1.0), args=a, solver=solver, rtol=1e-6,
                                             atol=1e-9, mass_matrix=LIN_M, init=init, throw=False))


def test_linear_dae_init_modes():
    a = jnp.asarray(2.0)
    consistent, inconsistent = jnp.array([1.0, -2.0]), jnp.array([1.0, 0.5])
    exact = np.exp(-3.0) * np.array([1.0, -2.0])
    sol = linear_solve("solve")(inconsistent, a)
    assert int(sol.status) == Status.SUCCESS and bool(sol.stats["init_adjusted"])
    np.testing.assert_allclose(sol.ys[-1], exact, rtol=1e-4)
    sol = linear_solve("check")(inconsistent, a)
    assert int(sol.status) == Status.INCONSISTENT_INIT
    assert "2.5" in sol.message() and "consistent" in sol.message()    # |0.5 + 2 * 1| = 2.5
    with pytest.raises(sciml.SolveError, match="not consistent"):
        sol.raise_if_failed()
    sol = linear_solve("check")(consistent, a)
    assert int(sol.status) == Status.SUCCESS and not bool(sol.stats["init_adjusted"])
    np.testing.assert_allclose(sol.ys[-1], exact, rtol=1e-4)
    sol = linear_solve("none")(consistent, a)
    assert int(sol.status) == Status.SUCCESS and not bool(sol.stats["init_adjusted"])


def test_index_two_initialisation_fails_with_its_own_status():
    # y' = z, 0 = y - sin t: the algebraic equation does not contain z (index 2), Newton cannot start.
    sol = sciml.solve(lambda t, u, a: jnp.stack([u[1], u[0] - jnp.sin(t)]), jnp.array([0.0, 1.0]), (0.0, 1.0),
                      solver=S.Rosenbrock23(), mass_matrix=LIN_M, throw=False)
    assert int(sol.status) == Status.INIT_FAILED
    assert "higher index" in sol.message()


def test_nonsingular_mass_matrix_with_an_explicit_solver():
    # 2 y' = -y: y = exp(-t / 2); Tsit5 integrates y' = M^{-1} f
    sol = sciml.solve(lambda t, y, a: -y, jnp.array([1.0, 2.0]), (0.0, 1.0), solver=S.Tsit5(), rtol=1e-10,
                      atol=1e-12, mass_matrix=2.0 * np.eye(2))
    np.testing.assert_allclose(sol.ys[-1], np.exp(-0.5) * np.array([1.0, 2.0]), rtol=1e-9)


# -- a full (non-diagonal, non-singular) M: M y' = A y  =>  y(t) = expm(M^{-1} A t) y0, both directions ---
FULL_M = np.array([[2.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, 1.0]])
FULL_A = np.array([[-1.0, 2.0, 0.0], [-2.0, -1.0, 0.0], [0.0, 0.3, -1.0]])


@pytest.mark.parametrize("solver,tol", [
    (S.Rodas5P(), 1e-9), pytest.param(S.RadauIIA5(), 1e-9, marks=pytest.mark.slow),
    pytest.param(S.BDF(), 1e-7, marks=pytest.mark.slow), pytest.param(S.Kvaerno5(), 1e-7, marks=pytest.mark.slow),
    pytest.param(S.Rosenbrock23(), 1e-5, marks=pytest.mark.slow)])
def test_a_full_mass_matrix_matches_the_exact_solution(solver, tol):
    import scipy.linalg

    y0 = np.array([1.0, 0.5, -0.3])
    y1 = scipy.linalg.expm(np.linalg.solve(FULL_M, FULL_A)) @ y0
    for span, start, end in (((0.0, 1.0), y0, y1), ((1.0, 0.0), y1, y0)):
        sol = sciml.solve(lambda t, y, a: a @ y, jnp.asarray(start), span, args=jnp.asarray(FULL_A), solver=solver,
                          rtol=1e-8, atol=1e-10, mass_matrix=FULL_M)
        np.testing.assert_allclose(sol.ys[-1], end, atol=tol)


# -- the pendulum in index-1 form: (x, y, u, v, lam), x^2 + y^2 = 1 differentiated twice ---------------
PEND_M = np.diag([1.0, 1.0, 1.0, 1.0, 0.0])
PEND_T1 = 3.0
PEND_TS = np.linspace(0.25, PEND_T1, 12)
THETA0 = 0.5


def pendulum(t, s, g):
    x, y, u, v, lam = s[0], s[1], s[2], s[3], s[4]
    return jnp.stack([u, v, -lam * x, -lam * y - g, u * u + v * v - lam * (x * x + y * y) - g * y])


def pendulum_y0(dtype=jnp.float64):
    return jnp.array([np.sin(THETA0), -np.cos(THETA0), 0.0, 0.0, 0.0], dtype)   # lam = 0: inconsistent


def angle_reference(g, ts):
    """x(t), y(t) from theta'' = -g sin theta (scipy, rtol 1e-12)."""
    sol = scipy.integrate.solve_ivp(lambda t, z: [z[1], -g * np.sin(z[0])], (0.0, PEND_T1), [THETA0, 0.0],
                                    t_eval=ts, rtol=1e-12, atol=1e-12, method="DOP853")
    return np.sin(sol.y[0]), -np.cos(sol.y[0])


def crossings(g):
    """Times where x = 0 (theta = 0) in (0, PEND_T1]: quarter periods, from scipy's event location."""
    ev = lambda t, z: z[0]  # noqa: E731
    sol = scipy.integrate.solve_ivp(lambda t, z: [z[1], -g * np.sin(z[0])], (0.0, PEND_T1), [THETA0, 0.0],
                                    events=ev, rtol=1e-12, atol=1e-12, method="DOP853")
    return sol.t_events[0]


X_ZERO = sciml.Event(lambda t, s, g: s[0], terminal=False)


@functools.partial(jax.jit, static_argnames="rtol")
def pendulum_solve(y0, g, rtol=1e-8):
    return sciml.solve(pendulum, y0, (0.0, PEND_T1), args=g, solver=S.Rodas5P(), saveat="dense", rtol=rtol,
                       atol=rtol, mass_matrix=PEND_M, events=[X_ZERO], event_records=4, throw=False, max_steps=1000)


def test_pendulum_dense_output_events_and_drift():
    g = 9.81
    sol = pendulum_solve(pendulum_y0(), jnp.asarray(g))
    assert int(sol.status) == Status.SUCCESS
    # init: at rest the constraint gives lam = -g y / (x^2 + y^2) = g cos(theta0)
    np.testing.assert_allclose(sol.ys[0, 4], g * np.cos(THETA0), rtol=1e-12)
    dense = sol.evaluate(jnp.asarray(PEND_TS))
    x_ref, y_ref = angle_reference(g, PEND_TS)
    np.testing.assert_allclose(dense[:, 0], x_ref, atol=1e-6)
    np.testing.assert_allclose(dense[:, 1], y_ref, atol=1e-6)
    ref_times = crossings(g)
    n = int(sol.event_count[0])
    assert n == len(ref_times)
    np.testing.assert_allclose(sol.event_ts[0, :n], ref_times, atol=1e-6)
    # The index-1 form keeps only the second derivative of the constraint: x^2 + y^2 - 1 drifts.
    fine = sol.evaluate(jnp.linspace(0.0, PEND_T1, 301))
    drift = float(jnp.max(jnp.abs(fine[:, 0] ** 2 + fine[:, 1] ** 2 - 1.0)))
    print(f"pendulum (index 1, Rodas5P, rtol 1e-8): max constraint drift |x^2 + y^2 - 1| = {drift:.2e}")
    assert drift < 1e-6


def test_vmap_equals_single_solves():
    # the linear DAE (shares its compiled solve with test_linear_dae_init_modes): each lane is inconsistent
    a = jnp.array([0.5, 2.0, 4.0])
    u0 = jnp.array([[1.0, 0.0], [2.0, 1.0], [0.5, -3.0]])
    batched = jax.vmap(linear_solve("solve"))(u0, a)
    assert np.all(np.asarray(batched.status) == Status.SUCCESS) and np.all(np.asarray(batched.stats["init_adjusted"]))
    for i in range(3):
        single = linear_solve("solve")(u0[i], a[i])
        np.testing.assert_allclose(batched.ys[i], single.ys, rtol=1e-12, atol=1e-14)
        exact = float(u0[i, 0]) * np.exp(-(1.0 + float(a[i]))) * np.array([1.0, -float(a[i])])
        np.testing.assert_allclose(batched.ys[i, -1], exact, rtol=5e-4)   # Rosenbrock23 (order 2) at rtol 1e-6


def test_float32_stays_float32():
    sol = pendulum_solve(pendulum_y0(jnp.float32), jnp.float32(9.81), rtol=1e-4)
    assert sol.ys.dtype == jnp.float32 and sol.y_final.dtype == jnp.float32
    assert int(sol.status) == Status.SUCCESS
    x_ref, _ = angle_reference(9.81, PEND_TS)
    np.testing.assert_allclose(sol.evaluate(jnp.asarray(PEND_TS, jnp.float32))[:, 0], x_ref, atol=2e-3)


# -- gradients: d x(T) / d g through the initialisation and the solve --------------------------------
GRAD_T1 = 1.0


def pendulum_x(g, solver=S.Rodas5P(), adjoint=A.Direct()):
    sol = sciml.solve(pendulum, pendulum_y0(g.dtype), (0.0, GRAD_T1), args=g, solver=solver, rtol=1e-10,
                      atol=1e-10, mass_matrix=PEND_M, adjoint=adjoint, max_steps=1000)
    return sol.y_final[0] + 0.1 * sol.y_final[4]          # a differential and the algebraic component


@functools.lru_cache(maxsize=None)
def finite_difference(solver, g=9.81, eps=1e-5):
    """Central difference of `pendulum_x` (one compiled primal per solver, shared by its adjoints)."""
    primal = jax.jit(functools.partial(pendulum_x, solver=solver))
    return float((primal(jnp.asarray(g + eps)) - primal(jnp.asarray(g - eps))) / (2 * eps))


@pytest.mark.parametrize("solver,adjoint", [
    (S.Rodas5P(), A.Direct()), pytest.param(S.Rodas5P(), A.Forward(), marks=pytest.mark.slow),
    pytest.param(S.BDF(), A.Forward(), marks=pytest.mark.slow)])
def test_gradient_matches_finite_differences(solver, adjoint):
    primal = functools.partial(pendulum_x, solver=solver, adjoint=adjoint)
    grad = jax.jit(jax.grad(primal) if isinstance(adjoint, A.Direct) else jax.jacfwd(primal))(jnp.asarray(9.81))
    np.testing.assert_allclose(grad, finite_difference(solver), rtol=1e-4)


@pytest.mark.parametrize("adjoint", [A.Direct(), A.Forward()])
def test_float32_gradient_through_the_initialisation(adjoint):
    # u0 = exp(-(1 + a) t), u1 = -a u0 (set by init from an inconsistent 0): d(u0 + u1)(1)/da = (a - 2) exp(-(1 + a))
    def loss(a):
        sol = sciml.solve(linear_dae, jnp.array([1.0, 0.0], jnp.float32), (0.0, 1.0), args=a, solver=S.Rodas5P(),
                          rtol=1e-6, atol=1e-7, mass_matrix=LIN_M.astype(np.float32), adjoint=adjoint)
        return sol.y_final[0] + sol.y_final[1]

    a = jnp.float32(0.5)
    grad = (jax.grad if isinstance(adjoint, A.Direct) else jax.jacfwd)(loss)(a)
    assert grad.dtype == jnp.float32
    np.testing.assert_allclose(grad, (0.5 - 2.0) * np.exp(-1.5), rtol=2e-4)


DAE_SOLVERS = {"Rodas5P": S.Rodas5P(), "Rosenbrock23": S.Rosenbrock23(), "RadauIIA5": S.RadauIIA5(), "BDF": S.BDF()}
#: the default run keeps one row per solver; the slow set has the whole matrix
#: (BDF, a multistep method, has no Direct: it is refused, see below)
GRADIENT_ROWS = [(name, adjoint, dtype) for name in DAE_SOLVERS for adjoint in ("Direct", "Forward")
                 for dtype in ("float64", "float32") if (name, adjoint) != ("BDF", "Direct")]
FAST_GRADIENT_ROWS = {("RadauIIA5", "Direct", "float64"), ("BDF", "Forward", "float32"),
                      ("Rosenbrock23", "Forward", "float64")}


@pytest.mark.parametrize("name, adjoint, dtype", [
    row if row in FAST_GRADIENT_ROWS else pytest.param(*row, marks=pytest.mark.slow) for row in GRADIENT_ROWS])
def test_every_dae_solver_differentiates_through_the_initialisation(name, adjoint, dtype):
    """The linear DAE from an inconsistent start: d(u0 + u1)(1)/da = (a - 2) exp(-(1 + a)) (exact)."""
    a, tol = jnp.asarray(0.5, dtype), {"float64": 1e-6, "float32": 2e-3}[dtype]

    def loss(a):
        sol = sciml.solve(linear_dae, jnp.array([1.0, 0.0], dtype), (0.0, 1.0), args=a, solver=DAE_SOLVERS[name],
                          rtol=1e-8 if dtype == "float64" else 1e-5, atol=1e-10 if dtype == "float64" else 1e-6,
                          mass_matrix=LIN_M.astype(dtype), adjoint=getattr(A, adjoint)())
        return sol.y_final[0] + sol.y_final[1]

    grad = jax.jit(jax.grad(loss) if adjoint == "Direct" else jax.jacfwd(loss))(a)
    assert grad.dtype == a.dtype
    np.testing.assert_allclose(grad, (0.5 - 2.0) * np.exp(-1.5), rtol=tol)


def test_bdf_with_direct_names_forward():
    def loss(a):
        return sciml.solve(linear_dae, jnp.array([1.0, -2.0]), (0.0, 1.0), args=a, solver=S.BDF(), mass_matrix=LIN_M,
                           adjoint=A.Direct()).y_final[0]

    with pytest.raises(NotImplementedError, match=r"multistep method.*adjoints\.Forward\(\)"):
        jax.grad(loss)(jnp.asarray(2.0))


def linear_dae_jacobian(t, u, a, scale=1.0):
    return scale * jnp.array([[-1.0, 1.0], [a, 1.0]], dtype=u.dtype)


@pytest.mark.parametrize("solver", [S.Rodas5P(), S.RadauIIA5(), S.BDF()], ids=["Rodas5P", "RadauIIA5", "BDF"])
def test_a_users_jacobian_serves_a_dae(solver):
    """``jac=`` with a mass matrix: the exact Jacobian gives autodiff's solution (and the exact one)."""
    u0 = jnp.array([1.0, -2.0])
    sol = _solve(solver=solver, jac=linear_dae_jacobian, rtol=1e-8, atol=1e-10)
    assert int(sol.status) == Status.SUCCESS
    np.testing.assert_allclose(sol.ys[-1], np.exp(-3.0) * np.asarray(u0), rtol=1e-6)
    auto = _solve(solver=solver, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(sol.ys[-1], auto.ys[-1], rtol=1e-12)


def test_the_users_jacobian_is_the_one_used_with_a_dae():
    """A Rosenbrock step depends on J: a Jacobian off by a factor of 2 moves the solution (within the
    tolerance, which the error control keeps, but far beyond the rounding by which the exact `jac` and
    autodiff differ above)."""
    wrong = _solve(jac=lambda t, u, a: linear_dae_jacobian(t, u, a, 2.0), rtol=1e-8, atol=1e-10)
    right = _solve(jac=linear_dae_jacobian, rtol=1e-8, atol=1e-10)
    assert float(jnp.max(jnp.abs(wrong.ys[-1] - right.ys[-1]))) > 1e-11


# -- bad input ----------------------------------------------------------------------------------------
def _solve(**kw):
    base = dict(f=linear_dae, y0=jnp.array([1.0, -2.0]), t_span=(0.0, 1.0), args=2.0, solver=S.Rodas5P(),
                mass_matrix=LIN_M)
    base.update(kw)
    return sciml.solve(**base)


@pytest.mark.parametrize("kw,error,match", [
    (dict(mass_matrix=np.eye(3)), ValueError, r"shape \(2, 2\)"),
    (dict(mass_matrix=np.eye(2, dtype=np.complex128)), TypeError, "real array"),
    (dict(y0={"a": jnp.array([1.0, -2.0])}), ValueError, "one 1-D array"),
    (dict(y0=jnp.ones((2, 1))), ValueError, "one 1-D array"),
    (dict(solver=S.Tsit5()), ValueError, "Rodas5P"),
    (dict(solver=S.Kvaerno5()), ValueError, "Rosenbrock23, RadauIIA5 or BDF"),
    (dict(adjoint=A.Interpolating()), ValueError, "Direct"),
    (dict(adjoint=A.Backsolve()), ValueError, "Forward"),
    (dict(init="guess"), ValueError, "`init`"),
])
def test_bad_input(kw, error, match):
    with pytest.raises(error, match=match):
        _solve(**kw)


def test_traced_mass_matrix_is_refused():
    with pytest.raises(TypeError, match="concrete"):
        jax.jit(lambda m: _solve(mass_matrix=m).ys)(jnp.asarray(LIN_M))


def test_float32_state_refuses_an_inexact_mass_matrix():
    with pytest.raises(TypeError, match="exactly"):
        _solve(y0=jnp.array([1.0, -2.0], jnp.float32), args=jnp.float32(2.0), mass_matrix=np.diag([1.0 / 3.0, 0.0]))


def test_c_backend_refuses_and_auto_picks_direct_or_forward():
    with pytest.raises(ValueError, match="does not serve this .*Rosenbrock23"):   # Rodas5P's kernel takes M
        _solve(backend="c", solver=S.Rosenbrock23())
    from sciml.adjoints.auto import Auto
    big = dataclasses_replace_mass(S.Rodas5P())
    adjoint, reason = Auto().choose(y0=jnp.zeros(200), args=jnp.zeros(3), solver=big)
    assert isinstance(adjoint, A.Direct) and "mass matrix" in reason
    adjoint, _ = Auto().choose(y0=jnp.zeros(200), args=jnp.zeros(3), solver=dataclasses_replace_mass(S.BDF()))
    assert isinstance(adjoint, A.Forward)


def dataclasses_replace_mass(solver):
    import dataclasses

    from sciml.solvers._mass import MassMatrix
    return dataclasses.replace(solver, mass_matrix=MassMatrix(np.eye(200)))
