"""Nothing fails silently (DESIGN.md, principle 5).

Every way a solve can stop early has a status code and a message that names the cause and the fix:
an exception outside ``jit`` (``throw=True``, the default), a runtime error inside ``jit``, and with
``throw=False`` a per-trajectory ``sol.status`` plus ``sol.message()``. One failing trajectory in a
``vmap`` never changes the others. Bad inputs are refused before anything is compiled.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sciml
from sciml import SolveError, Status
from sciml import solvers as S
from sciml.solvers._status import describe


# -- problems ---------------------------------------------------------------------------------
def riccati(t, y, a):
    """y' = a y^2, y(0) = 1: y = 1 / (1 - a t). Blows up at t = 1/a for a > 0, finite for a <= 0."""
    return a * y**2


def riccati_exact(t, a):
    return 1.0 / (1.0 - a * np.asarray(t))


def decay(t, y, k):
    return -k * y


def nan_after_time(t, y, t_bad):
    """dy/dt = -y, but f is NaN from t_bad on (a model evaluated outside its domain)."""
    return jnp.where(t > t_bad, jnp.nan, -y)


def nan_past_state(t, y, args):
    """dy/dt = 1 + 0 * sqrt(2 - y): y = 1 + t until y reaches 2 (t = 1), then sqrt of a negative."""
    return 1.0 + 0.0 * jnp.sqrt(2.0 - y)


Y1 = jnp.array([1.0])
# Save points on both sides of the blow-up at t = 1 (none at the singularity itself).
TS = jnp.array([0.0, 0.25, 0.5, 0.75, 0.9, 1.25, 1.5, 2.0])
TOL = dict(rtol=1e-8, atol=1e-8)


def _riccati(a, throw=False):
    return sciml.solve(riccati, Y1, (0.0, 2.0), args=a, saveat=TS, throw=throw, **TOL)


riccati_jit = jax.jit(_riccati)
riccati_vmap = jax.jit(jax.vmap(_riccati))
riccati_throw_jit = jax.jit(lambda a: _riccati(a, throw=True).ys)
riccati_throw_vmap = jax.jit(jax.vmap(lambda a: _riccati(a, throw=True).ys))
max_steps_jit = jax.jit(lambda k: sciml.solve(decay, Y1, (0.0, 10.0), args=k, max_steps=5, throw=False))
nan_time_jit = jax.jit(lambda t_bad: sciml.solve(nan_after_time, Y1, (0.0, 2.0), args=t_bad, throw=False))


def _is_failure_status(status):
    return int(status) in (Status.DT_UNDERFLOW, Status.NONFINITE)


def _time_in(msg):
    """The time a message reports (``... at t=1.25 ...``)."""
    return float(re.search(r"\bt=(-?\d[\d.e+-]*\d|\d)", msg).group(1))


# -- failure modes: status, time, message -----------------------------------------------------
def test_max_steps_reached_names_max_steps_and_suggests_a_stiff_solver():
    sol = max_steps_jit(1.0)
    assert int(sol.status) == Status.MAX_STEPS
    assert not bool(sol.success)
    assert int(sol.stats["naccept"]) + int(sol.stats["nreject"]) == 5
    assert 0.0 < float(sol.t_final) < 10.0
    # The state where it stopped is the true solution there (the solve was right, just too long).
    np.testing.assert_allclose(sol.y_final, np.exp(-float(sol.t_final)), rtol=1e-5)
    msg = sol.message()
    assert "`max_steps=5`" in msg
    assert f"t={float(sol.t_final):.6g}" in msg
    assert re.search(r"(Increase|raise) `max_steps`", msg) and "Rodas5P" in msg    # the fixes


def test_finite_time_blow_up_stops_near_the_singularity():
    sol = riccati_jit(1.0)
    assert _is_failure_status(sol.status), sol.message()
    assert abs(float(sol.t_final) - 1.0) < 1e-4
    msg = sol.message()
    assert abs(_time_in(msg) - 1.0) < 1e-4
    if int(sol.status) == Status.DT_UNDERFLOW:
        assert "step size underflowed" in msg and "blow up" in msg and "Rodas5P" in msg
    else:
        assert "non-finite" in msg and "Event" in msg


def test_blow_up_with_default_tolerances_is_a_step_size_underflow():
    sol = sciml.solve(riccati, Y1, (0.0, 2.0), args=1.0, throw=False)
    assert int(sol.status) == Status.DT_UNDERFLOW
    assert abs(float(sol.t_final) - 1.0) < 1e-4
    assert "step size underflowed at t=1 " in sol.message()


def test_saved_states_before_a_failure_are_correct_and_after_it_nan():
    sol = riccati_jit(1.0)
    reached = np.asarray(TS) < float(sol.t_final)
    assert reached.tolist() == [True] * 5 + [False] * 3
    np.testing.assert_allclose(sol.ys[reached, 0], riccati_exact(TS[reached], 1.0), rtol=1e-6)
    assert np.all(np.isnan(sol.ys[~reached]))


def test_nan_from_f_after_some_time_is_nonfinite_at_that_time():
    sol = nan_time_jit(0.5)
    assert int(sol.status) == Status.NONFINITE
    assert abs(float(sol.t_final) - 0.5) < 1e-6
    np.testing.assert_allclose(sol.y_final, np.exp(-0.5), rtol=1e-5)   # last finite state is right
    msg = sol.message()
    assert "non-finite (NaN/Inf) at t=0.5" in msg
    assert "`f`" in msg                                                # where to look


def test_nan_from_f_past_some_state_is_nonfinite_where_the_state_gets_there():
    sol = sciml.solve(nan_past_state, Y1, (0.0, 3.0), throw=False)
    assert int(sol.status) == Status.NONFINITE
    assert abs(float(sol.t_final) - 1.0) < 1e-6            # y = 1 + t reaches 2 at t = 1
    assert "non-finite (NaN/Inf) at t=1" in sol.message()


def test_fixed_step_blow_up_is_nonfinite_not_garbage():
    sol = sciml.solve(riccati, Y1, (0.0, 2.0), args=1.0, solver=S.RK4(), adaptive=False, dt0=0.01,
                      throw=False)
    assert int(sol.status) == Status.NONFINITE
    assert 0.9 < float(sol.t_final) < 1.1
    assert np.all(np.isfinite(sol.y_final))                 # the last state that was finite
    assert "non-finite" in sol.message()


def test_terminal_event_is_a_success_with_its_own_status():
    hit = sciml.Event(lambda t, y, k: y[0] - 0.5, direction=-1)
    sol = sciml.solve(decay, Y1, (0.0, 10.0), args=1.0, events=[hit], throw=True, **TOL)
    assert int(sol.status) == Status.EVENT
    assert bool(sol.success)
    assert abs(float(sol.t_final) - np.log(2.0)) < 1e-7
    assert sol.message() == f"The solve stopped at a terminal event at t={np.log(2.0):.6g}."
    assert sol.raise_if_failed() is sol


def test_success_status_and_message():
    sol = riccati_jit(-1.0)
    assert int(sol.status) == Status.SUCCESS and bool(sol.success)
    assert sol.message() == "The solve reached t1 successfully."
    np.testing.assert_allclose(sol.ys[:, 0], riccati_exact(TS, -1.0), rtol=1e-6)


def test_float32_time_underflow_suggests_float64_time_in_and_out_of_jit():
    y0 = jnp.array([1.0], jnp.float32)
    sol = sciml.solve(riccati, y0, (0.0, 2.0), args=jnp.float32(1.0), throw=False)
    assert int(sol.status) == Status.DT_UNDERFLOW and sol.t_final.dtype == jnp.float32
    assert abs(float(sol.t_final) - 1.0) < 1e-3
    assert "Time is float32; passing `t_span` as float64 arrays" in sol.message()
    thrown = jax.jit(lambda a: sciml.solve(riccati, y0, (0.0, 2.0), args=a).ys)
    with pytest.raises(Exception, match="Time is float32; passing `t_span` as float64 arrays"):
        jax.block_until_ready(thrown(jnp.float32(1.0)))


@pytest.mark.parametrize("status, fix", [(Status.MAX_STEPS, "Increase `max_steps`"),
                                         (Status.DT_UNDERFLOW, "check the vector field")])
def test_a_stiff_solver_is_not_told_to_use_a_stiff_solver(status, fix):
    plain = describe(status, t=0.5, dt=1e-9, max_steps=100)
    stiff = describe(status, t=0.5, dt=1e-9, max_steps=100, solver_stiff=True)
    assert "Rodas5P" in plain and "Rodas5P" not in stiff
    assert "t=0.5" in stiff and fix in stiff


def test_newton_failure_message_names_the_cause_and_a_fix():
    # Kvaerno5 and BDF produce it in tests/solvers/test_stiff.py; here the message itself.
    msg = describe(Status.NEWTON_FAILED, t=0.25, dt=1e-3, max_steps=100)
    assert "Newton iteration" in msg and "t=0.25" in msg
    assert "Rodas5P" in msg and "`jac=`" in msg


# -- throw=True: outside jit, inside jit, under vmap ------------------------------------------
def test_throw_outside_jit_raises_solve_error_with_the_message():
    expected = riccati_jit(1.0).message()
    with pytest.raises(SolveError) as err:
        _riccati(1.0, throw=True)
    assert str(err.value) == expected


def test_throw_outside_jit_on_max_steps():
    with pytest.raises(SolveError, match=r"after `max_steps=5` steps.*Rodas5P"):
        sciml.solve(decay, Y1, (0.0, 10.0), args=1.0, max_steps=5)


def test_throw_inside_jit_raises_at_run_time_with_the_message():
    expected = riccati_jit(1.0).message()
    with pytest.raises(Exception) as err:
        jax.block_until_ready(riccati_throw_jit(1.0))
    assert expected in str(err.value)
    assert "throw=False" in str(err.value)                 # how to get the status instead


def test_throw_inside_jit_does_not_raise_on_success():
    ys = riccati_throw_jit(-1.0)
    np.testing.assert_allclose(ys[:, 0], riccati_exact(TS, -1.0), rtol=1e-6)


def test_throw_under_vmap_names_the_failing_trajectory():
    expected = riccati_jit(1.0).message()
    with pytest.raises(Exception) as err:
        jax.block_until_ready(riccati_throw_vmap(jnp.array([-1.0, 1.0, -0.5])))
    assert "trajectory 1 of 3" in str(err.value)
    assert expected in str(err.value)
    ys = riccati_throw_vmap(jnp.array([-1.0, -0.5]))     # all fine: no error
    np.testing.assert_allclose(ys[1, :, 0], riccati_exact(TS, -0.5), rtol=1e-6)


def test_throw_under_checkpoint_and_gradient_raises_on_failure_only():
    # the check is a pure callback (an effect would be refused by jax.checkpoint) whose token only the
    # failing branch adds to the states; under vmap one branch serves the whole batch
    loss = jax.jit(jax.vmap(jax.value_and_grad(jax.checkpoint(lambda a: jnp.sum(_riccati(a, throw=True).ys)))))
    values, grads = loss(jnp.array([-1.0, -0.5]))
    want = jnp.sum(riccati_exact(TS, jnp.array([[-1.0], [-0.5]])), axis=1)
    np.testing.assert_allclose(values, want, rtol=1e-5)
    assert bool(jnp.all(jnp.isfinite(grads)))
    with pytest.raises(Exception, match=r"trajectory 1 of 2: .*throw=False"):
        jax.block_until_ready(loss(jnp.array([-1.0, 1.0])))


# -- throw=False under vmap: one failure does not touch the others ------------------------------
A_BATCH = jnp.array([-1.0, 1.0, -0.5, 0.6])   # 1.0 blows up at t=1, 0.6 at t=5/3


@pytest.fixture(scope="module")
def batch():
    return riccati_vmap(A_BATCH)


def test_vmap_statuses_are_per_trajectory(batch):
    status = np.asarray(batch.status)
    assert status[0] == Status.SUCCESS and status[2] == Status.SUCCESS
    assert _is_failure_status(status[1]) and _is_failure_status(status[3])
    np.testing.assert_allclose(batch.t_final, [2.0, 1.0, 2.0, 1 / 0.6], atol=1e-4)
    msgs = batch.message()
    assert isinstance(msgs, list) and len(msgs) == 4
    assert msgs[0] == "The solve reached t1 successfully."
    assert abs(_time_in(msgs[1]) - 1.0) < 1e-4 and abs(_time_in(msgs[3]) - 1 / 0.6) < 1e-4


def test_vmap_failure_does_not_corrupt_the_other_trajectories(batch):
    for i in (0, 2):
        alone = riccati_jit(A_BATCH[i])
        np.testing.assert_allclose(batch.ys[i], alone.ys, rtol=1e-12, atol=0)
        np.testing.assert_allclose(batch.ys[i, :, 0], riccati_exact(TS, float(A_BATCH[i])), rtol=1e-6)
        assert int(batch.stats["naccept"][i]) == int(alone.stats["naccept"])


def test_vmap_failed_trajectory_is_nan_past_its_failure(batch):
    for i in (1, 3):
        reached = np.asarray(TS) < float(batch.t_final[i])
        assert not reached.all()
        assert np.all(np.isnan(batch.ys[i][~reached]))
        a = float(A_BATCH[i])
        np.testing.assert_allclose(batch.ys[i][reached, 0], riccati_exact(TS[reached], a), rtol=1e-6)


def test_raise_if_failed_on_a_batch_reports_how_many_and_the_first(batch):
    with pytest.raises(SolveError, match=r"2 of 4 trajectories failed; the first \(index 1\)"):
        batch.raise_if_failed()


# -- bad inputs are refused at trace time, naming the cause and the fix ------------------------
def _solve(**overrides):
    kw = dict(f=decay, y0=jnp.array([1.0, 2.0]), t_span=(0.0, 1.0), args=1.0)
    kw.update(overrides)
    return sciml.solve(kw.pop("f"), kw.pop("y0"), kw.pop("t_span"), **kw)


class _OwnController:
    """A user's controller that is not a dataclass (so `max_step` cannot be folded into it)."""

    dtmax = None

    def init(self, *a):
        raise AssertionError("never used")

    def adapt(self, *a):
        raise AssertionError("never used")


BAD_INPUTS = {
    "t_span equal": (dict(t_span=(1.0, 1.0)), ValueError, [r"t0 != t1", r"\(1.0, 1.0\)", "Widen"]),
    "t_span not a pair": (dict(t_span=(0.0, 1.0, 2.0)), ValueError, [r"pair \(t0, t1\)"]),
    "t_span infinite": (dict(t_span=(0.0, np.inf)), ValueError, ["finite", "inf"]),
    "y0 NaN": (dict(y0=jnp.array([1.0, jnp.nan])), ValueError, ["`y0` must be finite", "nan"]),
    "integer y0": (dict(y0=jnp.array([1, 2])), TypeError, ["int", "floating", r"jnp.asarray\(y0, jnp.float64\)"]),
    "integer list y0": (dict(y0=[1, 2]), TypeError, ["int", r"jnp.asarray\(y0, jnp.float64\)"]),
    "rtol zero": (dict(rtol=0.0), ValueError, ["`rtol` must be > 0", "0.0", "rtol=1e-6"]),
    "rtol negative": (dict(rtol=-1e-3), ValueError, ["`rtol` must be > 0", "-0.001", "rtol=1e-6"]),
    "atol negative": (dict(atol=-1.0), ValueError, ["`atol` must be >= 0", "-1.0", "atol=1e-6"]),
    "atol nan": (dict(atol=float("nan")), ValueError, ["`atol` must be finite", "nan", "atol=1e-6"]),
    "rtol inf": (dict(rtol=float("inf")), ValueError, ["`rtol` must be finite", "inf", "rtol=1e-6"]),
    "saveat outside": (dict(saveat=jnp.array([0.0, 0.5, 1.5])), ValueError,
                       [r"inside `t_span=\(0.0, 1.0\)`", r"saveat\[2\]=1.5", "widen `t_span`"]),
    "saveat before t0": (dict(saveat=jnp.array([-0.5, 0.5])), ValueError, [r"saveat\[0\]=-0.5"]),
    "saveat unsorted": (dict(saveat=jnp.array([0.0, 0.5, 0.2])), ValueError,
                        ["sorted", "increasing", r"saveat\[2\]=0.2 after saveat\[1\]=0.5"]),
    "saveat unsorted backwards": (dict(t_span=(1.0, 0.0), saveat=jnp.array([1.0, 0.2, 0.5])), ValueError,
                                  ["decreasing", r"saveat\[2\]=0.5"]),
    "saveat bad string": (dict(saveat="end"), ValueError, ["\"steps\"", "\"dense\"", "'end'"]),
    "f wrong shape": (dict(f=lambda t, y, a: jnp.zeros(3)), ValueError,
                      [r"returned shape \(3,\)", r"y0 has shape \(2,\)", "must have the shape of y"]),
    "f scalar": (dict(f=lambda t, y, a: -y[0]), ValueError, [r"returned shape \(\)"]),
    "f wrong structure": (dict(y0={"a": jnp.ones(2)}, f=lambda t, y, a: {"b": y["a"]}), ValueError,
                          ["structure of `y0`"]),
    "f complex for real state": (dict(f=lambda t, y, a: -1j * y), TypeError,
                                 ["complex128 for a real state", r"complex `y0`", "real part"]),
    "f bool": (dict(f=lambda t, y, a: y > 0), TypeError, ["bool", "numeric"]),
    "f not an array": (dict(f=lambda t, y, a: "dy"), TypeError, [r"calling `f\(t0, y0, args\)` failed"]),
    "f raises": (dict(f=lambda t, y, a: y @ jnp.ones((3, 3))), TypeError,
                 [r"calling `f\(t0, y0, args\)` failed", "dot_general"]),
    "f not callable": (dict(f=None), TypeError, ["callable", "NoneType"]),
    "fixed-step solver adaptive": (dict(solver=S.RK4()), ValueError,
                                   [r"`RK4\(\)` has no error estimate", r"adaptive=False, dt0=", "Tsit5"]),
    "adaptive=False without dt0": (dict(adaptive=False), ValueError, ["`adaptive=False`", "`dt0=`"]),
    "max_steps zero": (dict(max_steps=0), ValueError, ["positive int", "got 0", "max_steps=100_000"]),
    "max_steps negative": (dict(max_steps=-5), ValueError, ["positive int", "got -5"]),
    "max_steps float": (dict(max_steps=10.0), ValueError, ["positive int", "got 10.0"]),
    "rtol wrong tree": (dict(rtol=[1e-6, 1e-6]), ValueError, ["scalar or a pytree like `y0`"]),
    "events not Event": (dict(events=[lambda t, y, a: y[0]]), TypeError, [r"list of `sciml.Event`", "function"]),
    "rtol wrong shape": (dict(rtol=jnp.ones(3)), ValueError, ["`rtol` has a leaf of shape", r"\(3,\)", r"\(2,\)"]),
    "dt0 zero": (dict(dt0=0.0), ValueError, ["`dt0` must be a finite, nonzero", "None"]),
    "dt0 NaN": (dict(dt0=float("nan")), ValueError, ["`dt0` must be a finite, nonzero", "nan"]),
    "max_step zero": (dict(max_step=0.0), ValueError, ["`max_step` must be a positive number", "None"]),
    "max_step negative": (dict(max_step=-0.1), ValueError, ["`max_step` must be a positive number", "-0.1"]),
    "max_step NaN": (dict(max_step=float("nan")), ValueError, ["`max_step` must be a positive number", "nan"]),
    "float16 state": (dict(y0=jnp.ones(2, jnp.float16)), TypeError, ["float16", "float32, float64", "astype"]),
    "bfloat16 state": (dict(y0=jnp.ones(2, jnp.bfloat16)), TypeError, ["bfloat16", "float32, float64"]),
    "solver as a string": (dict(solver="Tsit5"), TypeError, ["`solver` must be an object", "'Tsit5'",
                                                             r"sciml.solvers.Tsit5\(\)"]),
    "solver as a class": (dict(solver=S.Tsit5), TypeError, ["instance", r"solver=Tsit5\(\)"]),
    "adjoint as a string": (dict(adjoint="direct"), TypeError, ["`adjoint` must be an object", "Auto"]),
    "controller not one": (dict(controller=0.5), TypeError, ["`controller` must be a step-size controller"]),
    "empty y0": (dict(y0=jnp.ones(0)), ValueError, ["no components"]),
    "max_step with a controller not a dataclass": (dict(controller=_OwnController(), max_step=0.1), TypeError,
                                                   ["`max_step` is set as the controller's `dtmax`", "leave"]),
}


def test_an_ensemble_of_no_trajectories_is_refused():
    with pytest.raises(ValueError, match="`y0s` holds 0 trajectories"):
        sciml.solve_ensemble(decay, jnp.ones((0, 2)), (0.0, 1.0), args=1.0)


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_raises_a_clear_error(case):
    overrides, error, patterns = BAD_INPUTS[case]
    with pytest.raises(error) as err:
        _solve(**overrides)
    text = "\n".join([str(err.value)] + getattr(err.value, "__notes__", []))  # the user's own error + sciml's note
    for pattern in patterns:
        assert re.search(pattern, text), (pattern, text)

