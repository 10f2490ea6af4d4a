"""AutoSwitch: accurate where the problem changes character, cheaper than the worse fixed choice.

Problems (float64 unless said): the flame-propagation model ``y' = y^2 - y^3``, ``y(0) = delta``
(non-stiff growth, ignition at ``t ~ 1/delta``, then stiff; exact solution through the Wright omega
function), Van der Pol with mu = 1e3 over ~2 periods and ROBER over [0, 1e5] (oracles: the stored
Radau@1e-12 references of ``stiff_problems.py``), and a Prothero-Robinson problem whose stiffness
rises and falls again while the exact solution stays ``sin t`` (the dense-output oracle across switches
in both directions). Work is ``nfev + n * njev`` (a forward-mode Jacobian costs ``n`` evaluations) and
steps are accepted plus rejected; each is compared with Tsit5 alone and Rodas5P alone on the same
problem and tolerances. Gradients (``adjoint=Direct()``) are checked against the central differences
of ``test_stiff_gradients.py``.
"""

import functools
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import wrightomega

import sciml
from sciml import adjoints as A
from sciml import solvers as S
from tests.solvers.stiff_problems import PROBLEMS, reference, relative_error, rober
from tests.solvers.test_stiff_gradients import FLOOR, LOG_K, WEIGHTS, finite_differences

RTOL = 1e-6
DELTA = 1e-4
FLAME_TS = np.linspace(0.0, 2 / DELTA, 201)
PR_TS = np.linspace(0.0, 20.0, 201)


def flame(t, y, k):
    return k * (y**2 - y**3)


def flame_exact(t, delta):
    """``y = 1 / (W(a exp(a - t)) + 1)`` with ``a = 1/delta - 1``; ``W(exp(z))`` is Wright's omega."""
    a = 1 / delta - 1
    return 1 / (np.real(wrightomega(np.log(a) + a - np.asarray(t, np.float64))) + 1)


def prothero_robinson(t, y, stiffness):
    """``y' = -lam(t) (y - sin t) + cos t``: exact ``sin t`` from ``y(0) = 0``; ``lam`` rises from 1 to
    ``1 + stiffness`` around t = 10 and falls back."""
    lam = 1.0 + stiffness * jnp.exp(-(((t - 10.0) / 3.0) ** 4))
    return -lam * (y - jnp.sin(t)) + jnp.cos(t)


def _solve(f, y0, t1, args, solver, saveat, atol, max_steps=100_000):
    return sciml.solve(f, jnp.asarray(y0), (0.0, t1), args=args, saveat=saveat, rtol=RTOL, atol=atol,
                       solver=solver, max_steps=max_steps, throw=False)


@functools.lru_cache(maxsize=None)
def flame_runs():
    """The flame solve by each method (one compile each), saving at `FLAME_TS`."""
    return {name: _solve(flame, [DELTA], 2 / DELTA, 1.0, solver, jnp.asarray(FLAME_TS), RTOL * 1e-3)
            for name, solver in (("auto", S.AutoSwitch()), ("Tsit5", S.Tsit5()), ("Rodas5P", S.Rodas5P()))}


@functools.lru_cache(maxsize=None)
def rober_value_and_grad():
    """``test_stiff_gradients.py``'s loss (a weighted sum of ROBER's final state against the log rate
    constants) by AutoSwitch with ``Direct()``, its gradient and the solution; ``t1`` and ``rtol`` are
    traced, so the accuracy test (t1 = 1e5) and the gradient test (t1 = 40) share one compile."""
    def loss(log_k, t1, rtol):
        sol = sciml.solve(rober, jnp.array([1.0, 0.0, 0.0]), (0.0, t1), args=jnp.exp(log_k), rtol=rtol,
                          atol=rtol * jnp.asarray(FLOOR), solver=S.AutoSwitch(), adjoint=A.Direct(), throw=False)
        return jnp.sum(jnp.asarray(WEIGHTS) * sol.y_final), sol
    return jax.jit(jax.value_and_grad(loss, has_aux=True))


@functools.lru_cache(maxsize=None)
def stiff_set_runs(name):
    """VdP or ROBER by each method; Tsit5 cannot finish them, so it is stopped after 20000 steps."""
    p = PROBLEMS[name]
    atol = RTOL * jnp.asarray(p.floor)
    runs = {label: _solve(p.f, p.y0, p.t1, jnp.asarray(p.args), solver, None, atol, max_steps)
            for label, solver, max_steps in (("Tsit5", S.Tsit5(), 20_000), ("Rodas5P", S.Rodas5P(), 100_000))}
    if name == "rober":
        (_, runs["auto"]), _ = rober_value_and_grad()(jnp.asarray(LOG_K), p.t1, RTOL)
    else:
        runs["auto"] = _solve(p.f, p.y0, p.t1, jnp.asarray(p.args), S.AutoSwitch(), None, atol)
    return runs


def work(sol, n):
    return int(sol.stats["nfev"]) + n * int(sol.stats.get("njev", 0))


def steps(sol):
    return int(sol.stats["naccept"]) + int(sol.stats["nreject"])


def assert_cheaper_than_worse_choice(runs, n):
    """AutoSwitch costs at most a quarter of the worse fixed choice and at most 1.5x the better one, in
    evaluations and in steps (a Tsit5 run stopped at `max_steps` is a lower bound of its cost)."""
    for measure in (lambda s: work(s, n), steps):
        ours, fixed = measure(runs["auto"]), sorted(measure(runs[k]) for k in ("Tsit5", "Rodas5P"))
        assert ours <= 0.25 * fixed[1], (ours, fixed)
        assert ours <= 1.5 * fixed[0], (ours, fixed)


def test_flame_is_accurate_switches_once_and_is_cheaper():
    runs = flame_runs()
    sol = runs["auto"]
    assert int(sol.status) == 0 and sol.ys.dtype == jnp.float64
    exact = flame_exact(FLAME_TS, DELTA)
    err = np.abs(np.asarray(sol.ys[:, 0]) - exact)
    # The ignition amplifies local errors; Rodas5P alone at the same tolerance errs as much there.
    rodas_err = np.abs(np.asarray(runs["Rodas5P"].ys[:, 0]) - exact).max()
    assert err.max() <= max(2 * rodas_err, 1e3 * RTOL), (err.max(), rodas_err)
    assert err[FLAME_TS < 0.9 / DELTA].max() <= 1e-7          # the non-stiff growth
    # Starts non-stiff, ends stiff: one switch, and the stiff method took some but not all steps.
    assert int(sol.stats["nswitch"]) == 1
    assert 0 < int(sol.stats["nstiff"]) < int(sol.stats["naccept"])
    assert_cheaper_than_worse_choice(runs, 1)


@pytest.mark.parametrize("name", ["vdp", "rober"])
def test_stiff_set_is_accurate_and_cheaper(name):
    p = PROBLEMS[name]
    runs = stiff_set_runs(name)
    sol = runs["auto"]
    assert int(sol.status) == 0
    assert int(runs["Tsit5"].status) == int(S.Status.MAX_STEPS)
    err = relative_error(sol.ys[-1], reference(name), p.floor)
    rodas_err = relative_error(runs["Rodas5P"].ys[-1], reference(name), p.floor)
    assert err <= max(10 * RTOL, 3 * rodas_err), (err, rodas_err)
    assert_cheaper_than_worse_choice(runs, p.y0.shape[0])
    nswitch = int(sol.stats["nswitch"])
    if name == "vdp":
        # Relaxation oscillations: stiff on the slow branches, non-stiff through the jumps, both ways
        # every half period (~1.9 periods here), without chattering.
        assert 4 <= nswitch <= 12
    else:
        assert nswitch >= 1          # the fast initial transient, then stiff to the end
    assert 0 < int(sol.stats["nstiff"]) < int(sol.stats["naccept"])


def test_dense_output_is_right_across_switches_both_ways_under_vmap():
    """Two stiffness levels in one vmapped program (where ``lax.cond`` runs both methods and selects)."""
    solve = jax.jit(jax.vmap(lambda stiffness: _solve(prothero_robinson, [0.0], 20.0, stiffness, S.AutoSwitch(),
                                                      jnp.asarray(PR_TS), 1e-9)))
    sol = solve(jnp.array([1e3, 1e4]))
    assert np.all(np.asarray(sol.status) == 0)
    assert np.all(np.asarray(sol.stats["nswitch"]) == 2)          # non-stiff -> stiff -> non-stiff
    assert np.all((0 < np.asarray(sol.stats["nstiff"])) & (sol.stats["nstiff"] < sol.stats["naccept"]))
    err = np.abs(np.asarray(sol.ys[:, :, 0]) - np.sin(PR_TS))
    # Every save point comes from the polynomial of the method that took its step: Tsit5's outside
    # the stiff stretch, Rodas5P's (4th order, long steps) inside it. Rodas5P alone errs 2e-5 here.
    assert err.max() <= 1e-4, err.max()
    assert err[:, (PR_TS < 4) | (PR_TS > 17)].max() <= 1e-5


def test_float32_stays_float32():
    delta = np.float32(1e-3)
    ts = np.linspace(0.0, 2 / delta, 11, dtype=np.float32)
    sol = sciml.solve(flame, jnp.array([delta]), (np.float32(0.0), np.float32(2 / delta)), args=np.float32(1.0),
                      saveat=jnp.asarray(ts), rtol=1e-4, atol=1e-7, solver=S.AutoSwitch(), throw=False)
    assert sol.ys.dtype == jnp.float32 and sol.ts.dtype == jnp.float32
    assert int(sol.status) == 0 and int(sol.stats["nswitch"]) >= 1
    exact = flame_exact(ts, np.float64(delta))
    assert np.abs(np.asarray(sol.ys[:, 0], np.float64) - exact).max() <= 1e-2


def test_direct_gradient_matches_finite_differences():
    (_, sol), grad = rober_value_and_grad()(jnp.asarray(LOG_K), 40.0, 1e-8)
    assert int(sol.status) == 0
    assert int(sol.stats["nswitch"]) >= 1 and int(sol.stats["nstiff"]) > 0   # the sweep replays both methods
    assert grad.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(grad), finite_differences(), rtol=1e-5)


def test_kernel_does_not_serve_another_pair_and_auto_falls_back(caplog):
    # the kernel runs the default pair (tests/solvers/test_kernel_autoswitch.py)
    args = dict(rtol=1e-4, atol=1e-7, solver=S.AutoSwitch(stiff=S.Rosenbrock23()))
    with pytest.raises(ValueError, match=r'backend="c"` does not serve this solve.*AutoSwitch'):
        sciml.solve(flame, jnp.array([0.1]), (0.0, 20.0), args=1.0, backend="c", **args)
    with caplog.at_level(logging.DEBUG, logger="sciml.kernel"):
        jax.eval_shape(lambda: sciml.solve(flame, jnp.array([0.1]), (0.0, 20.0), args=1.0, backend="auto",
                                           **args).ys)
    assert any("runs the XLA loop" in r.getMessage() and "AutoSwitch" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("kwargs, match", [
    (dict(nonstiff=S.Rodas5P()), r"AutoSwitch\(nonstiff=\.\.\.\)"),
    (dict(nonstiff=S.Dopri8()), r"AutoSwitch\(nonstiff=\.\.\.\)"),
    (dict(stiff=S.Tsit5()), r"AutoSwitch\(stiff=\.\.\.\)"),
    (dict(stiff=S.BDF()), r"one-step stiff method"),
    (dict(maxstiffstep=-1), r"maxstiffstep"),
    (dict(stifftol=0.0), r"stifftol"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        S.AutoSwitch(**kwargs)
