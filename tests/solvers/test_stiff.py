"""The stiff solvers in use: dense output, events, stats, dtypes, vmap, ``jac=``, ``solve_ivp``, Newton
failures, the matrix-free BDF, and the stiffness hint an explicit solver gives.

Oracle: ROBER on [0, 40] against scipy's Radau at rtol=1e-12 (save points and the time where y1
falls to 0.9). Errors use the stiff set's norm ``max |y - ref| / (|ref| + floor)``. Each solver
compiles one program (dense output, an event and the stats together), shared by the tests below.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import sciml
from sciml import Status
from sciml import solvers as S
from tests.solvers.stiff_problems import PROBLEMS, rober

K = PROBLEMS["rober"].args
FLOOR = PROBLEMS["rober"].floor
Y0 = jnp.array([1.0, 0.0, 0.0])
T1 = 40.0
TS = np.geomspace(1e-3, T1, 25)
RTOL = 1e-5
# Rodas5P's, BDF's and RadauIIA5's own interpolants are as accurate between steps as at them; Kvaerno5's and
# ROS34PW2's cubic Hermite and Rosenbrock23's quadratic are lower-order there.
# ROS34PW2 (order 3) takes longer steps at the same rtol than Kvaerno5, so its Hermite is lower still.
DENSE_FACTOR = {S.Rodas5P: 10, S.BDF: 10, S.Kvaerno5: 100, S.Rosenbrock23: 100, S.ROS34PW2: 300,
                S.RadauIIA5: 10}


def below_09(t, y, k):
    return y[0] - 0.9


@functools.lru_cache(maxsize=None)
def radau():
    res = solve_ivp(lambda t, y: rober(t, y, K, xp=np), (0.0, T1), np.asarray(Y0), method="Radau", rtol=1e-12,
                    atol=1e-12 * FLOOR, t_eval=TS, events=lambda t, y: y[0] - 0.9)
    return res.y.T, res.t_events[0][0], res.y[:, -1]


def rel_err(y, ref):
    return float(np.max(np.abs(np.asarray(y, np.float64) - ref) / (np.abs(ref) + FLOOR)))


@functools.lru_cache(maxsize=None)
def features(method):
    @jax.jit
    def run(k, rtol):
        sol = sciml.solve(rober, Y0, (0.0, T1), args=k, solver=method(), saveat="dense", rtol=rtol, atol=rtol * FLOOR,
                          events=[sciml.Event(below_09, terminal=False)], max_steps=2000)
        return sol.evaluate(jnp.asarray(TS)), sol.event_t[0], sol.y_final, sol.stats, sol.status
    return run(jnp.asarray(K), RTOL)


@pytest.mark.parametrize("method", S.STIFF, ids=lambda m: m.__name__)
def test_dense_output_between_steps_matches_the_reference(method):
    ys, _, y_final, _, status = features(method)
    ref, _, ref_final = radau()
    assert int(status) == Status.SUCCESS
    assert ys.dtype == jnp.float64
    assert rel_err(y_final, ref_final) <= 10 * RTOL
    assert max(rel_err(y, r) for y, r in zip(ys, ref)) <= DENSE_FACTOR[method] * RTOL


@pytest.mark.parametrize("method", S.STIFF, ids=lambda m: m.__name__)
def test_event_is_located_on_the_dense_output(method):
    _, event_t, _, _, _ = features(method)
    _, ref_t, _ = radau()
    assert abs(float(event_t) / ref_t - 1) <= DENSE_FACTOR[method] * RTOL


def test_stats_count_jacobians_and_factorisations():
    attempts = {}
    for method in S.STIFF:
        stats = features(method)[3]
        assert {"nfev", "naccept", "nreject", "njev", "nlu"} <= set(stats)
        assert all(v.dtype == jnp.int32 for v in stats.values())
        attempts[method] = int(stats["naccept"]) + int(stats["nreject"])
        assert int(stats["nfev"]) > int(stats["naccept"])
    # Rosenbrock methods: one Jacobian and one LU per attempt.
    for method in (S.Rodas5P, S.Rosenbrock23):
        stats = features(method)[3]
        assert int(stats["njev"]) == int(stats["nlu"]) == attempts[method]
    # Kvaerno5 keeps its Jacobian across steps; BDF also its LU while the step and order stay.
    k5, bdf = features(S.Kvaerno5)[3], features(S.BDF)[3]
    assert 0 < int(k5["njev"]) < attempts[S.Kvaerno5]
    assert 0 < int(bdf["njev"]) < int(bdf["nlu"]) < attempts[S.BDF]


@pytest.mark.parametrize("method", S.STIFF, ids=lambda m: m.__name__)
def test_float32_stays_float32(method):
    ts = jnp.asarray(TS[::6], jnp.float32)
    sol = sciml.solve(rober, Y0.astype(jnp.float32), (0.0, T1), args=jnp.asarray(K, jnp.float32), solver=method(),
                      saveat=ts, rtol=1e-4, atol=jnp.asarray(1e-4 * FLOOR, jnp.float32))
    assert sol.ys.dtype == jnp.float32 and sol.ts.dtype == jnp.float32 and sol.t_final.dtype == jnp.float32
    assert all(v.dtype == jnp.int32 for v in sol.stats.values())
    assert max(rel_err(y, r) for y, r in zip(sol.ys, radau()[0][::6])) <= 1e-3 * max(1, DENSE_FACTOR[method] / 100)


def test_vmap_gives_each_trajectory_its_own_solve():
    ks = jnp.asarray(K)[None] * jnp.array([[1.0, 1.0, 1.0], [1.5, 1.0, 1.0], [1.0, 0.5, 2.0]])
    batched = jax.jit(jax.vmap(lambda k: sciml.solve(rober, Y0, (0.0, T1), args=k, solver=S.Rodas5P(), rtol=RTOL,
                                                     atol=RTOL * FLOOR).y_final))(ks)
    np.testing.assert_allclose(batched[0], features(S.Rodas5P)[2], rtol=1e-10, atol=1e-16)
    assert rel_err(batched[0], radau()[2]) <= 10 * RTOL
    assert not np.allclose(batched[1], batched[0]) and not np.allclose(batched[2], batched[0])


def rober_jacobian(t, y, k):
    return jnp.array([[-k[0], k[2] * y[2], k[2] * y[1]],
                      [k[0], -k[2] * y[2] - 2 * k[1] * y[1], -k[2] * y[1]],
                      [0.0, 2 * k[1] * y[1], 0.0]])


@pytest.mark.parametrize("method", [S.Rodas5P, S.BDF], ids=lambda m: m.__name__)
def test_a_user_jacobian_replaces_autodiff(method):
    calls = []

    def jac(t, y, k):
        calls.append(1)                     # counted while tracing: the solve does use it
        return rober_jacobian(t, y, k)

    sol = sciml.solve(rober, Y0, (0.0, T1), args=jnp.asarray(K), solver=method(), rtol=RTOL, atol=RTOL * FLOOR, jac=jac)
    assert calls
    # The same Jacobian as autodiff's, so the same steps and result (to rounding).
    np.testing.assert_allclose(sol.y_final, features(method)[2], rtol=1e-9, atol=1e-15)


def test_jac_is_refused_where_it_cannot_be_used():
    with pytest.raises(ValueError, match="never forms a Jacobian"):
        sciml.solve(rober, Y0, (0.0, 1.0), args=jnp.asarray(K), jac=rober_jacobian)
    with pytest.raises(ValueError, match="one 1-D array"):
        sciml.solve(lambda t, y, a: {"u": -y["u"]}, {"u": jnp.ones(2)}, (0.0, 1.0), solver=S.Rodas5P(),
                    jac=lambda t, y, a: -jnp.eye(2))
    with pytest.raises(ValueError, match=r"the \(3, 3\) Jacobian"):
        sciml.solve(rober, Y0, (0.0, 1.0), args=jnp.asarray(K), solver=S.Rodas5P(), jac=lambda t, y, k: jnp.eye(2))


@pytest.mark.parametrize("method", [m for m in S.STIFF if m is not S.RadauIIA5], ids=lambda m: m.__name__)
def test_complex_states_match_the_exact_solution(method):
    """A complex state takes the complex (holomorphic) Jacobian, as scipy's stiff methods do."""
    lam, y0 = -1.0 + 2.0j, np.array([1.0, 0.5j])
    sol = sciml.solve(lambda t, y, a: lam * y, jnp.asarray(y0), (0.0, 1.0), solver=method(), rtol=1e-8, atol=1e-10)
    assert sol.ys.dtype == jnp.complex128
    np.testing.assert_allclose(sol.ys[-1], y0 * np.exp(lam), rtol=1e-5)


@pytest.mark.parametrize("name", ["Rodas5P", "Kvaerno5", "BDF"])
def test_solve_ivp_runs_the_stiff_methods(name):
    res = sciml.solve_ivp(lambda t, y: rober(t, y, K), (0.0, T1), np.asarray(Y0), method=name, t_eval=TS, rtol=RTOL,
                          atol=RTOL * FLOOR)
    assert res.success and res.y.shape == (3, TS.size)
    assert res.njev > 0 and res.nlu > 0
    assert rel_err(res.y[:, -1], radau()[2]) <= 10 * RTOL


def no_root(t, y, args):
    """y' = +1000 for y <= 0 and -1000 for y > 0: from y = 0 no implicit step has a solution."""
    return jnp.where(y > 0, -1e3, 1e3)


@pytest.mark.parametrize("method", [S.Kvaerno5, S.BDF], ids=lambda m: m.__name__)
def test_newton_that_never_converges_ends_as_newton_failed(method):
    sol = sciml.solve(no_root, jnp.array([0.0]), (1.0, 2.0), solver=method(), throw=False)
    assert int(sol.status) == Status.NEWTON_FAILED
    assert float(sol.t_final) == 1.0 and int(sol.stats["naccept"]) == 0
    assert "Newton iteration kept failing at t=1 " in sol.message()
    with pytest.raises(sciml.SolveError, match="Newton iteration kept failing"):
        sciml.solve(no_root, jnp.array([0.0]), (1.0, 2.0), solver=method())


def test_fixed_step_newton_failure_is_reported_not_nan():
    sol = sciml.solve(no_root, jnp.array([0.0]), (1.0, 2.0), solver=S.Kvaerno5(), adaptive=False, dt0=0.01,
                      throw=False)
    assert int(sol.status) == Status.NEWTON_FAILED and np.isfinite(sol.y_final).all()


def test_kvaerno5_rejects_a_step_newton_cannot_solve_and_goes_on():
    # A first step of 20 is far too long for Newton on ROBER; the step is retried smaller, not failed.
    sol = sciml.solve(rober, Y0, (0.0, T1), args=jnp.asarray(K), solver=S.Kvaerno5(), dt0=20.0, rtol=RTOL,
                      atol=RTOL * FLOOR)
    assert int(sol.status) == Status.SUCCESS and int(sol.stats["nreject"]) > 0
    assert rel_err(sol.y_final, radau()[2]) <= 10 * RTOL


def test_bdf_with_local_tolerance_one_takes_scipys_steps():
    rtol, atol = 1e-6, 1e-6 * FLOOR
    ours = sciml.solve(rober, Y0, (0.0, T1), args=jnp.asarray(K), solver=S.BDF(local_tolerance=1.0), rtol=rtol,
                       atol=atol)
    theirs = solve_ivp(lambda t, y: rober(t, y, K, xp=np), (0.0, T1), np.asarray(Y0), method="BDF", rtol=rtol,
                       atol=atol, jac=lambda t, y: np.asarray(rober_jacobian(t, y, K)))
    # The same algorithm: step, Jacobian and LU counts agree to a few percent (the error norms differ
    # in detail: ours scales by max(|y0|, |y1|), scipy's by |y1|).
    assert abs(int(ours.stats["naccept"]) / (len(theirs.t) - 1) - 1) < 0.05
    assert abs(int(ours.stats["njev"]) - theirs.njev) <= 2
    assert abs(int(ours.stats["nlu"]) / theirs.nlu - 1) < 0.15


def test_bdf_steps_obey_max_step_and_fixed_steps():
    capped = sciml.solve(rober, Y0, (0.0, T1), args=jnp.asarray(K), solver=S.BDF(), rtol=RTOL, atol=RTOL * FLOOR,
                         max_step=0.5, saveat="steps")
    assert np.max(np.diff(np.asarray(capped.ts))) <= 0.5 + 1e-12
    fixed = sciml.solve(lambda t, y, a: -y, jnp.array([1.0]), (0.0, 1.0), solver=S.BDF(), adaptive=False, dt0=0.125,
                        saveat="steps")
    np.testing.assert_allclose(np.asarray(fixed.ts), np.linspace(0.0, 1.0, 9), atol=1e-12)
    assert abs(float(fixed.y_final[0]) - np.exp(-1.0)) < 1e-2


def test_matrix_free_bdf_solves_a_reaction_diffusion_system():
    n = 48
    dx = 1.0 / (n + 1)
    x = np.linspace(dx, 1.0 - dx, n)

    def field(t, u, d):
        padded = jnp.concatenate([jnp.zeros(1), u, jnp.zeros(1)])
        return d * (padded[2:] - 2 * u + padded[:-2]) / dx**2 + 10 * u * (1 - u) * (u - 0.3)

    u0 = np.exp(-100 * (x - 0.5) ** 2)
    sol = sciml.solve(field, jnp.asarray(u0), (0.0, 2.0), args=0.01, solver=S.BDF(linear_solver="gmres"), rtol=1e-6,
                      atol=1e-8)
    ref = solve_ivp(lambda t, u: np.asarray(field(t, jnp.asarray(u), 0.01)), (0.0, 2.0), u0, method="Radau",
                    rtol=1e-10, atol=1e-12).y[:, -1]
    assert int(sol.stats["nlu"]) == 0                   # never factored a matrix
    np.testing.assert_allclose(np.asarray(sol.y_final), ref, atol=1e-5)
    with pytest.raises(ValueError, match="linear_solver"):
        S.BDF(linear_solver="cg")


@pytest.mark.parametrize("module", ["rosenbrock", "esdirk", "bdf"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"sciml.solvers.{module}"), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# -- an explicit solver on a stiff problem ------------------------------------------------------
def test_explicit_solver_stuck_on_rober_says_the_problem_looks_stiff():
    kwargs = dict(args=jnp.asarray(K), solver=S.Tsit5(), max_steps=2000, rtol=1e-6, atol=1e-6 * FLOOR)
    with pytest.raises(sciml.SolveError, match=r"max_steps=2000.*The problem looks stiff.*Rodas5P"):
        sciml.solve(rober, Y0, (0.0, 1e5), **kwargs)
    sol = sciml.solve(rober, Y0, (0.0, 1e5), throw=False, **kwargs)
    assert int(sol.status) == Status.MAX_STEPS and "looks stiff" in sol.message()


def test_a_long_non_stiff_solve_is_not_called_stiff():
    sol = sciml.solve(lambda t, y, a: -y, jnp.array([1.0]), (0.0, 10.0), max_steps=5, throw=False)
    assert int(sol.status) == Status.MAX_STEPS and "looks stiff" not in sol.message()
