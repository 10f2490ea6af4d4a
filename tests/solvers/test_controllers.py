"""Step-size controllers (`PIController`, `IController`, `PIDController`) end to end.

Every backend runs the controller it is given: the generated kernel (`sciml.solve(backend="c")`,
`sciml.solve_ensemble(backend="c")`, `sciml.solve_ivp` with ``t_eval``) takes exactly the steps of the
XLA loop (the oracle: the controller's Python ``adapt``), and `PIDController` configured like
diffrax's takes diffrax's accepted and rejected steps.
"""

import dataclasses
import shutil

import diffrax
import jax.numpy as jnp
import numpy as np
import pytest

import sciml
from sciml import solvers as S
from sciml._problem import prepare
from sciml.kernel._codegen import kernel_source
from sciml.kernel._launch import prepare_launch
from tests.ensemble.problems import assert_warning_free_c
from tests.solvers.problems import LV_P, LV_Y0, lotka_volterra

TS = jnp.linspace(0.0, 10.0, 11)
TOL = 1e-8

CONTROLLERS = {
    "PI, other constants": S.PIController(beta=0.08, safety=0.8, factormin=0.3, factormax=5.0),
    "I": S.IController(),
    # with its own error order, which also sets the first-step guess (Python and C alike)
    "PID": S.PIDController(pcoeff=0.2, icoeff=0.5, dcoeff=0.1, error_order=6),
}
Y0S = np.stack([LV_Y0, [2.0, 0.5]])


def _solve(y0, controller, backend):
    return sciml.solve(lotka_volterra, jnp.asarray(y0), (0.0, 10.0), args=jnp.asarray(LV_P), saveat=TS,
                       rtol=TOL, atol=TOL, controller=controller, backend=backend)


def _counts(stats, k=None):
    return {name: int(np.asarray(v) if k is None else np.asarray(v)[k]) for name, v in stats.items()}


@pytest.fixture(scope="module", params=list(CONTROLLERS))
def xla(request):
    """The XLA loop's solve of each trajectory of `Y0S`: the oracle."""
    controller = CONTROLLERS[request.param]
    return controller, [_solve(y0, controller, "jax") for y0 in Y0S]


def test_the_controllers_take_different_steps(xla):
    controller, (sol, _) = xla
    default = _solve(LV_Y0, S.PIController(), "jax")
    assert _counts(sol.stats) != _counts(default.stats)


def test_solve_in_the_kernel_takes_the_xla_loops_steps(xla):
    controller, (ref, _) = xla
    sol = _solve(LV_Y0, controller, "c")
    assert _counts(sol.stats) == _counts(ref.stats)
    np.testing.assert_allclose(sol.ys, ref.ys, rtol=1e-10)


def test_ensemble_in_the_kernel_takes_each_trajectorys_xla_steps(xla):
    controller, refs = xla
    ens = sciml.solve_ensemble(lotka_volterra, jnp.asarray(Y0S), (0.0, 10.0), args=jnp.asarray(LV_P), args_axes=None,
                               saveat=TS, rtol=TOL, atol=TOL, controller=controller, backend="c")
    for k, ref in enumerate(refs):
        assert _counts(ens.stats, k) == _counts(ref.stats)
        np.testing.assert_allclose(ens.ys[k], ref.ys, rtol=1e-10)


def test_solve_ivp_in_the_kernel_takes_the_xla_loops_steps(xla):
    controller, (ref, _) = xla
    res = sciml.solve_ivp(lambda t, y: lotka_volterra(t, y, LV_P), (0.0, 10.0), LV_Y0, t_eval=np.asarray(TS),
                          rtol=TOL, atol=TOL, backend="c", controller=controller)
    assert res.nfev == int(ref.stats["nfev"])
    np.testing.assert_allclose(res.y.T, ref.ys, rtol=1e-10)


def test_float32_stays_float32_in_the_kernel():
    """The controllers' constants become float32 literals and ``powf`` there. The steps are not compared:
    in float32 the error estimate of the small first step is mostly rounding, which XLA (its own ``pow``,
    FMA contraction) and C round differently, so the two loops may take a step more or less."""
    pid = CONTROLLERS["PID"]
    sol, ref = (sciml.solve(lotka_volterra, jnp.asarray(LV_Y0, jnp.float32), (0.0, 10.0),
                            args=jnp.asarray(LV_P, jnp.float32), rtol=1e-5, atol=1e-6, saveat=TS, controller=pid,
                            backend=backend) for backend in ("c", "jax"))
    assert sol.ys.dtype == ref.ys.dtype == jnp.float32
    np.testing.assert_allclose(sol.ys, ref.ys, rtol=1e-3)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc")
@pytest.mark.parametrize("controller", CONTROLLERS.values(), ids=CONTROLLERS.keys())
def test_the_kernel_source_is_warning_free_c(tmp_path, controller):
    problem, options = prepare(lotka_volterra, jnp.asarray(Y0S, jnp.float32), (0.0, 10.0),
                               jnp.asarray(LV_P, jnp.float32), controller=controller, backend="c", ensemble=True,
                               args_axes=None)
    launch, _ = prepare_launch(problem, options, np, np.asarray)
    assert_warning_free_c(kernel_source(launch.spec, launch.method, "c"), tmp_path)


def test_max_step_caps_any_controller_in_the_kernel_too():
    pid = CONTROLLERS["PID"]
    sol, ref = (sciml.solve(lotka_volterra, jnp.asarray(LV_Y0), (0.0, 10.0), args=jnp.asarray(LV_P), rtol=TOL, atol=TOL,
                            controller=pid, max_step=0.05, backend=backend) for backend in ("c", "jax"))
    assert _counts(sol.stats) == _counts(ref.stats) and int(ref.stats["naccept"]) >= 200


@dataclasses.dataclass(frozen=True)
class HalvingController:
    """A user's own controller: halves the step after a rejection, else keeps it."""

    dtmax: float | None = None

    def init(self, real_dtype):
        return ()

    def adapt(self, err, dt, error_order, state):
        accept = err <= 1.0
        return accept, jnp.where(accept, dt, dt / 2), state


def test_a_users_own_controller_runs_in_the_xla_loop_and_the_kernel_says_why_not():
    call = dict(f=lambda t, y, a: -y, y0=jnp.ones(1), t_span=(0.0, 1.0), controller=HalvingController(), dt0=0.1,
                rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match=r"`backend=\"c\"` does not serve this solve: it runs `PIController`, "
                                         r"`IController` and `PIDController`, not HalvingController"):
        sciml.solve(**call, backend="c")
    sol = sciml.solve(**call)                       # "auto" runs it in the XLA loop
    assert int(sol.stats["naccept"]) == 10
    with pytest.raises(ValueError, match=r"`backend=\"c\"` does not serve this ensemble: it runs `PIController`, "
                                         r"`IController` and `PIDController`, not HalvingController"):
        sciml.solve_ensemble(call["f"], jnp.ones((2, 1)), (0.0, 1.0), controller=HalvingController(), backend="c")


# -- diffrax's step sequence -----------------------------------------------------------------------------
@pytest.mark.parametrize("coefficients", [dict(), dict(pcoeff=0.3, icoeff=0.4)], ids=["default", "PI 0.3/0.4"])
@pytest.mark.parametrize("tol", [1e-6, 1e-9])
def test_pid_takes_diffraxs_accepted_and_rejected_steps(coefficients, tol):
    theirs = diffrax.diffeqsolve(diffrax.ODETerm(lotka_volterra), diffrax.Tsit5(), 0.0, 10.0, None,
                                 jnp.asarray(LV_Y0), args=jnp.asarray(LV_P), max_steps=10_000,
                                 stepsize_controller=diffrax.PIDController(rtol=tol, atol=tol, **coefficients))
    # configured as the PIDController docstring says: diffrax's first step is 0.01 for an ODE
    ours = sciml.solve(lotka_volterra, jnp.asarray(LV_Y0), (0.0, 10.0), args=jnp.asarray(LV_P), rtol=tol, atol=tol,
                       dt0=0.01, controller=S.PIDController(**coefficients))
    assert (int(ours.stats["naccept"]), int(ours.stats["nreject"])) == (
        int(theirs.stats["num_accepted_steps"]), int(theirs.stats["num_rejected_steps"]))
    np.testing.assert_allclose(ours.ys[-1], theirs.ys[-1], rtol=1e-6 if tol == 1e-6 else 1e-8)
