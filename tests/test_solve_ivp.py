"""`sciml.solve_ivp` against `scipy.integrate.solve_ivp` itself.

The facade takes scipy's call and returns scipy's result fields, so each test makes the same call to
both: scipy's DOP853 at rtol=atol=1e-12 is the reference for values, and scipy's own behaviour
(fields, shapes, statuses, event records) is the reference for the interface.
"""

import re

import numpy as np
import pytest
import scipy.integrate

import jax
import jax.numpy as jnp
import sciml
from sciml.ensemble import UnsupportedPrimitiveError


# -- the problem: Lotka-Volterra, parameters passed through `args` --------------------------------
def lotka_volterra(t, y, a, b, c, d):
    return jnp.stack([a * y[0] - b * y[0] * y[1], c * y[0] * y[1] - d * y[1]])


def lotka_volterra_np(t, y, a, b, c, d):
    return np.array([a * y[0] - b * y[0] * y[1], c * y[0] * y[1] - d * y[1]])


def prey_extremum(t, y, a, b, c, d):
    """Zero where dx/dt = x (a - b y) changes sign: y crosses a / b."""
    return a - b * y[1]


def predator_falls(t, y, a, b, c, d):
    """The predator falls back through 2a (uses args, so args must reach the events)."""
    return y[1] - 2.0 * a


predator_falls.terminal = True
predator_falls.direction = -1

T_SPAN = (0.0, 10.0)
Y0 = [1.0, 1.0]
ARGS = (1.5, 1.0, 3.0, 1.0)
T_EVAL = np.linspace(0.0, 10.0, 21)
OPTS = dict(rtol=1e-10, atol=1e-12)           # the default method, Tsit5
CLOSE = dict(rtol=1e-8, atol=1e-9)            # ours at rtol=1e-10 against scipy at 1e-12


def ours(**kw):
    call = dict(fun=lotka_volterra, t_span=T_SPAN, y0=Y0, args=ARGS, **OPTS)
    call.update(kw)
    return sciml.solve_ivp(call.pop("fun"), call.pop("t_span"), call.pop("y0"), **call)


def scipys(**kw):
    call = dict(fun=lotka_volterra_np, t_span=T_SPAN, y0=Y0, args=ARGS, method="DOP853", rtol=1e-12,
                atol=1e-12)
    call.update(kw)
    return scipy.integrate.solve_ivp(call.pop("fun"), call.pop("t_span"), call.pop("y0"), **call)


@pytest.fixture(scope="module")
def reference():
    """scipy's continuous solution, to check our values anywhere in [0, 10]."""
    return scipys(dense_output=True)


@pytest.fixture(scope="module")
def at_t_eval():
    return ours(t_eval=T_EVAL), scipys(t_eval=T_EVAL)


# -- result fields ---------------------------------------------------------------------------------
def test_result_has_scipys_fields_types_and_shapes(at_t_eval):
    res, ref = at_t_eval
    assert set(res.keys()) == set(ref.keys())
    for name in ref.keys():
        assert getattr(res, name) is res[name]
    assert isinstance(res.t, np.ndarray) and isinstance(res.y, np.ndarray)
    assert res.y.shape == ref.y.shape == (2, len(T_EVAL)) and res.y.dtype == np.float64
    np.testing.assert_array_equal(res.t, T_EVAL)
    for name in ("nfev", "njev", "nlu", "status"):
        assert isinstance(res[name], int), name
    assert res.nfev > 0 and res.njev == ref.njev == 0 and res.nlu == ref.nlu == 0
    assert (res.status, res.success, res.message) == (ref.status, ref.success, ref.message)
    assert res.sol is None and ref.sol is None
    assert res.t_events is None and ref.t_events is None and res.y_events is None


def test_t_eval_values_match_scipy_dop853(at_t_eval):
    res, ref = at_t_eval
    np.testing.assert_allclose(res.y, ref.y, **CLOSE)


def test_t_eval_none_returns_every_step(reference):
    res = ours()
    assert res.t[0] == 0.0 and res.t[-1] == 10.0
    assert np.all(np.diff(res.t) > 0)
    assert 10 < len(res.t) < 1000 and res.y.shape == (2, len(res.t))
    np.testing.assert_array_equal(res.y[:, 0], Y0)
    np.testing.assert_allclose(res.y, reference.sol(res.t), **CLOSE)


def test_backward_t_span_returns_decreasing_steps(reference):
    y_end = reference.sol(10.0)
    res = ours(t_span=(10.0, 0.0), y0=y_end)
    assert res.t[0] == 10.0 and res.t[-1] == 0.0
    assert np.all(np.diff(res.t) < 0)
    np.testing.assert_allclose(res.y, reference.sol(res.t), rtol=1e-7, atol=1e-8)


def test_dense_output_shapes_and_values_between_steps(reference):
    res = ours(dense_output=True)
    assert res.sol(2.5).shape == (2,) and isinstance(res.sol(2.5), np.ndarray)
    ts = np.random.default_rng(0).uniform(0.0, 10.0, 50)
    values = res.sol(ts)
    assert values.shape == (2, 50)
    np.testing.assert_allclose(values, reference.sol(ts), **CLOSE)
    np.testing.assert_allclose(res.sol(res.t), res.y, rtol=1e-12, atol=1e-14)   # through the steps


def test_dense_output_with_t_eval_returns_t_eval(reference):
    res = ours(dense_output=True, t_eval=T_EVAL)
    np.testing.assert_array_equal(res.t, T_EVAL)
    assert res.y.shape == (2, len(T_EVAL))
    np.testing.assert_allclose(res.y, reference.sol(T_EVAL), **CLOSE)
    np.testing.assert_allclose(res.sol(3.3), reference.sol(3.3), **CLOSE)


# -- events ------------------------------------------------------------------------------------------
def test_non_terminal_events_match_scipy():
    res, ref = ours(events=prey_extremum), scipys(events=prey_extremum)
    assert res.status == ref.status == 0
    assert len(res.t_events) == 1 and len(ref.t_events[0]) == 4
    np.testing.assert_allclose(res.t_events[0], ref.t_events[0], rtol=0, atol=1e-8)
    assert res.y_events[0].shape == ref.y_events[0].shape == (4, 2)
    np.testing.assert_allclose(res.y_events[0], ref.y_events[0], **CLOSE)
    np.testing.assert_allclose(res.y_events[0][:, 1], ARGS[0] / ARGS[1], rtol=1e-9)   # on the event


def test_terminal_event_matches_scipy_and_ends_the_solve():
    events = [prey_extremum, predator_falls]
    res, ref = ours(events=events), scipys(events=events)
    assert res.status == ref.status == 1 and res.success
    assert res.message == ref.message
    for mine, theirs in zip(res.t_events, ref.t_events):
        assert mine.shape == theirs.shape
        np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-8)
    for mine, theirs in zip(res.y_events, ref.y_events):
        np.testing.assert_allclose(mine, theirs, **CLOSE)
    assert abs(res.t[-1] - 1.5785177355537905) < 1e-8        # scipy's value
    assert res.t[-1] == res.t_events[1][0]
    np.testing.assert_allclose(res.y[:, -1], res.y_events[1][0], rtol=1e-12)
    np.testing.assert_allclose(res.y_events[1][0][1], 2.0 * ARGS[0], rtol=1e-10)


def test_terminal_event_with_t_eval_keeps_the_points_before_it():
    res = ours(events=[prey_extremum, predator_falls], t_eval=T_EVAL)
    ref = scipys(events=[prey_extremum, predator_falls], t_eval=T_EVAL)
    np.testing.assert_array_equal(res.t, ref.t)                # 0, 0.5, 1.0, 1.5
    np.testing.assert_allclose(res.y, ref.y, **CLOSE)


# -- methods --------------------------------------------------------------------------------------
@pytest.mark.parametrize("alias, name", [("RK45", "Dopri5"), ("RK23", "Bosh3"), ("DOP853", "Dopri8")])
def test_scipy_method_names_are_the_same_methods(alias, name, at_t_eval):
    _, ref = at_t_eval
    res = ours(method=alias, t_eval=T_EVAL, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(res.y, ref.y, rtol=1e-5, atol=1e-6)
    same = ours(method=name, t_eval=T_EVAL, rtol=1e-8, atol=1e-10)
    np.testing.assert_array_equal(same.y, res.y)
    assert same.nfev == res.nfev


@pytest.mark.parametrize("scipy_name, sciml_name", [("Radau", "RadauIIA5"), ("LSODA", "AutoSwitch")])
def test_radau_and_lsoda_run_their_sciml_methods(scipy_name, sciml_name):
    if not hasattr(sciml.solvers, sciml_name):
        with pytest.raises(ValueError, match=rf"`method='{scipy_name}'` runs `sciml.solvers.{sciml_name}`, which "
                                             r"this version of sciml does not have; use method='Rodas5P'"):
            ours(method=scipy_name)
        return
    res = ours(method=scipy_name, t_eval=T_EVAL, rtol=1e-8, atol=1e-10)
    same = ours(method=getattr(sciml.solvers, sciml_name)(), t_eval=T_EVAL, rtol=1e-8, atol=1e-10)
    np.testing.assert_array_equal(same.y, res.y)
    np.testing.assert_allclose(res.y, scipys(t_eval=T_EVAL).y, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", [scipy.integrate.RK23, scipy.integrate.RK45, scipy.integrate.DOP853,
                                 scipy.integrate.BDF])
def test_scipy_solver_classes_are_their_names(cls):
    by_class = ours(method=cls, t_eval=T_EVAL[:3], rtol=1e-6, atol=1e-8)
    by_name = ours(method=cls.__name__, t_eval=T_EVAL[:3], rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(by_class.y, by_name.y)


def test_a_users_odesolver_subclass_is_refused():
    class MySolver(scipy.integrate.RK45):
        pass

    with pytest.raises(ValueError, match=r"`method=MySolver`: a scipy `OdeSolver` subclass runs only inside scipy"):
        ours(method=MySolver)


@pytest.mark.parametrize("method", ["rk45", "Bogus"])
def test_unknown_method_lists_the_choices(method):
    with pytest.raises(ValueError) as err:
        ours(method=method)
    assert f"unknown method '{method}'" in str(err.value)
    for choice in ("Tsit5", "RK45", "DOP853"):
        assert f"'{choice}'" in str(err.value)


# -- inputs --------------------------------------------------------------------------------------------
def test_integer_y0_is_converted_to_float64_like_scipy(at_t_eval):
    res = ours(y0=[1, 1], t_eval=T_EVAL)
    assert res.y.dtype == np.float64
    assert scipys(y0=[1, 1], t_eval=T_EVAL).y.dtype == np.float64
    np.testing.assert_array_equal(res.y, at_t_eval[0].y)


def test_args_are_passed_to_fun_and_events():
    args = (1.0, 0.5, 2.0, 0.8)
    res = ours(args=args, t_eval=T_EVAL)
    np.testing.assert_allclose(res.y, scipys(args=args, t_eval=T_EVAL).y, **CLOSE)


BAD_INPUTS = {
    "t_eval outside t_span": (dict(t_eval=[0.0, 11.0]), [r"`t_eval` must be inside", r"t_eval\[1\]=11.0"]),
    "t_eval unsorted": (dict(t_eval=[0.0, 2.0, 1.0]), [r"`t_eval` must be sorted", "increasing"]),
    "t_eval unsorted backwards": (dict(t_span=(10.0, 0.0), t_eval=[1.0, 2.0]), ["decreasing"]),
    "y0 not finite": (dict(y0=[1.0, np.nan]), [r"`y0` must be finite", r"y0\[1\]=nan"]),
    "y0 2-D": (dict(y0=[[1.0, 1.0]]), [r"`y0` must be 1-D", r"\(1, 2\)"]),
    "atol negative": (dict(atol=-1.0), [r"`atol` must be >= 0", "atol=1e-9"]),
    "max_step zero": (dict(max_step=0.0), [r"`max_step` must be positive", "np.inf"]),
    "first_step negative": (dict(first_step=-0.1), [r"`first_step` must be in \(0, \|t1 - t0\|\]"]),
    "first_step too large": (dict(first_step=20.0), [r"`first_step`", "got 20.0"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_inputs_raise_value_error_like_scipy(case):
    overrides, patterns = BAD_INPUTS[case]
    with pytest.raises(ValueError):
        scipys(**overrides)                            # scipy refuses them too
    with pytest.raises(ValueError) as err:
        ours(**overrides)
    for pattern in patterns:
        assert re.search(pattern, str(err.value)), str(err.value)


@pytest.mark.parametrize("backend", ["auto", "c", "jax"])
@pytest.mark.parametrize("max_steps", [0, -5])
def test_max_steps_is_checked_the_same_on_every_path(backend, max_steps):
    """The kernel path used to accept `max_steps=0` and `-5`, which the JAX path refused."""
    with pytest.raises(ValueError, match=rf"`max_steps` must be a positive int; got {max_steps}"):
        ours(t_eval=T_EVAL, backend=backend, max_steps=max_steps)


def test_auto_falls_back_to_jax_when_the_compiler_fails(monkeypatch, tmp_path):
    """One fallback rule for every front door: a compiler that fails makes "c" raise and "auto" run JAX."""
    from sciml.kernel import _build, _xla

    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("SCIML_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(_xla, "_UNAVAILABLE", [])
    _build.compiler.cache_clear()
    try:
        fun = lambda t, y: -0.75 * y + 0.125  # noqa: E731  (a field no other test has built)
        with pytest.raises(sciml.ensemble.CompilerNotFoundError):
            sciml.solve_ivp(fun, (0.0, 1.0), [1.0], t_eval=[0.0, 1.0], backend="c")
        res = sciml.solve_ivp(fun, (0.0, 1.0), [1.0], t_eval=[0.0, 1.0], rtol=1e-10, atol=1e-12)
        exact = 0.125 / 0.75 + (1.0 - 0.125 / 0.75) * np.exp(-0.75)
        assert res.success
        np.testing.assert_allclose(res.y[0, -1], exact, rtol=1e-9)
    finally:
        _build.compiler.cache_clear()


def test_infinite_t1_runs_to_a_terminal_event_like_scipy():
    def hit_ground(t, y):
        return y[0]

    hit_ground.terminal, hit_ground.direction = True, -1
    cannon = lambda t, y: jnp.stack([y[1], -9.81 * jnp.ones_like(y[0])])  # noqa: E731
    res = sciml.solve_ivp(cannon, (0.0, np.inf), [0.0, 10.0], events=hit_ground, rtol=1e-10, atol=1e-12)
    assert res.status == 1
    np.testing.assert_allclose(res.t_events[0], [2 * 10.0 / 9.81], rtol=1e-10)
    np.testing.assert_allclose(res.t[-1], 2 * 10.0 / 9.81, rtol=1e-10)


@pytest.mark.parametrize("t_span", [(0.0, np.nan), (np.inf, 1.0), (-np.inf, 0.0)])
def test_nan_t1_and_infinite_t0_are_refused(t_span):
    with pytest.raises(ValueError, match=r"`t_span` must have a finite t0 and a t1 that is a number"):
        ours(t_span=t_span)


def test_rtol_must_be_positive():
    # scipy silently raises a too-small rtol; ours refuses a meaningless one.
    with pytest.raises(ValueError, match=r"`rtol` must be > 0; got 0.0. Use e.g. rtol=1e-6"):
        ours(rtol=0.0)


def test_unsupported_options_are_refused():
    with pytest.raises(ValueError, match=r"unsupported option\(s\) \['lband'\]"):
        ours(lband=1)


def test_jac_with_an_explicit_method_is_dropped_with_scipys_warning():
    with pytest.warns(UserWarning, match="The following arguments have no effect for a chosen solver: `jac`"):
        res = ours(jac=lambda t, y, *a: jnp.eye(2), t_eval=T_EVAL)
    with pytest.warns(UserWarning, match="no effect for a chosen solver: `jac`"):
        scipys(jac=lambda t, y, *a: np.eye(2), method="RK45")
    np.testing.assert_array_equal(res.y, ours(t_eval=T_EVAL).y)


# -- failures are results, not exceptions -------------------------------------------------------------
def blow_up(t, y):
    """y' = y^2, y(0) = 1: y = 1 / (1 - t), infinite at t = 1."""
    return y**2


def test_failure_gives_status_minus_one_and_a_message_like_scipy():
    t_eval = np.array([0.0, 0.3, 0.6, 0.9, 1.2, 1.5])
    res = sciml.solve_ivp(blow_up, (0.0, 2.0), [1.0], t_eval=t_eval, rtol=1e-8, atol=1e-10)
    ref = scipy.integrate.solve_ivp(lambda t, y: y**2, (0.0, 2.0), [1.0], t_eval=t_eval, rtol=1e-8, atol=1e-10)
    assert res.status == ref.status == -1
    assert res.success is False and ref.success is False
    assert "t=1" in res.message and ("step size" in res.message or "non-finite" in res.message)
    # the points reached before the blow-up, as scipy returns them
    np.testing.assert_array_equal(res.t, ref.t)
    np.testing.assert_allclose(res.y[0], 1.0 / (1.0 - res.t), rtol=1e-6)


# -- compiled once per (fun, method, shapes) ------------------------------------------------------------
TRACES = []


def counted_decay(t, y, k, c):
    TRACES.append(1)
    return -k * y + c


def test_repeated_calls_do_not_retrace():
    t_eval = np.linspace(0.0, 1.0, 5)
    first = sciml.solve_ivp(counted_decay, (0.0, 1.0), [1.0, 2.0], args=(2.0, 0.0), t_eval=t_eval)
    np.testing.assert_allclose(first.y, np.array([[1.0], [2.0]]) * np.exp(-2.0 * t_eval), rtol=1e-5)
    traced = len(TRACES)
    assert traced > 0
    calls = [
        dict(y0=[3.0, -1.0]),                                    # new values of y0
        dict(t_span=(0.5, 3.0), t_eval=np.linspace(0.5, 3.0, 5)),  # new t_span and t_eval values
        dict(args=(0.5, 1.0)),                                   # new args
        dict(rtol=1e-9, atol=1e-12),                             # new tolerances
        dict(rtol=np.float64(1e-7)),                             # a numpy scalar tolerance
        dict(y0=[1, 2]),                                         # integers, converted to float64
        dict(y0=np.array([1.0, 2.0])),
    ]
    for change in calls:
        kw = dict(t_span=(0.0, 1.0), y0=[1.0, 2.0], args=(2.0, 0.0), t_eval=t_eval)
        kw.update(change)
        res = sciml.solve_ivp(counted_decay, kw.pop("t_span"), kw.pop("y0"), **kw)
        assert res.success
        assert len(TRACES) == traced, f"retraced for {change}"
    # and the cached program really used the new values: y' = -k y + c from y0 at t0
    k, c = 0.5, 1.0
    res = sciml.solve_ivp(counted_decay, (0.5, 3.0), [3.0, -1.0], args=(k, c), t_eval=np.linspace(0.5, 3.0, 5),
                          rtol=1e-10, atol=1e-12)
    assert len(TRACES) == traced
    dt = np.linspace(0.0, 2.5, 5)
    exact = c / k + (np.array([[3.0], [-1.0]]) - c / k) * np.exp(-k * dt)
    np.testing.assert_allclose(res.y, exact, rtol=1e-8)


# -- backend="c": the same solve in sciml's generated C kernel, without XLA's per-step overhead ----------
KERNEL_CASES = {
    "forward": dict(),
    "backward": dict(t_span=(10.0, 0.0), t_eval=T_EVAL[::-1]),
    "float32": dict(y0=np.array(Y0, np.float32), rtol=1e-5, atol=1e-7),
    "Dopri8 with max_step and first_step": dict(method="DOP853", max_step=0.5, first_step=1e-3),
    "Rodas5P": dict(method="Rodas5P", rtol=1e-8, atol=1e-10),
}


@pytest.mark.parametrize("case", KERNEL_CASES)
def test_c_backend_gives_the_jax_backends_solve(case):
    kw = {"t_eval": T_EVAL, **KERNEL_CASES[case]}
    c, j = ours(backend="c", **kw), ours(backend="jax", **kw)
    assert c.y.dtype == j.y.dtype == (np.float32 if case == "float32" else np.float64)
    # one algorithm (steps, controller, status): the counts agree exactly, the values up to rounding
    assert (c.nfev, c.njev, c.nlu, c.status, c.message) == (j.nfev, j.njev, j.nlu, j.status, j.message)
    np.testing.assert_array_equal(c.t, j.t)
    np.testing.assert_allclose(c.y, j.y, rtol=2e-4 if case == "float32" else 1e-9, atol=0)
    # and "auto" (the default) runs the kernel for such calls
    np.testing.assert_array_equal(ours(**kw).y, c.y)


def test_c_backend_reuses_its_kernel_with_new_values():
    """After the first call only values change; each call must still solve its own problem."""
    t_eval = np.linspace(0.0, 1.0, 5)
    base = dict(t_span=(0.0, 1.0), y0=[1.0, 2.0], args=(2.0, 0.0), t_eval=t_eval, rtol=1e-10, atol=1e-12)
    changes = [dict(), dict(y0=[3.0, -1.0]), dict(t_span=(0.5, 3.0), t_eval=np.linspace(0.5, 3.0, 5)),
               dict(t_span=(1.0, 0.0), t_eval=t_eval[::-1]), dict(args=(0.5, 1.0)),
               dict(rtol=1e-6, atol=np.array([1e-8, 1e-3])), dict(first_step=0.01, max_step=0.05)]
    for change in changes:
        kw = {**base, **change}
        c = sciml.solve_ivp(counted_decay, kw.pop("t_span"), kw.pop("y0"), backend="c", **kw)
        kw = {**base, **change}
        j = sciml.solve_ivp(counted_decay, kw.pop("t_span"), kw.pop("y0"), backend="jax", **kw)
        assert c.nfev == j.nfev, change
        np.testing.assert_allclose(c.y, j.y, rtol=1e-9, atol=1e-12, err_msg=str(change))


def test_c_backend_calls_neither_share_results_nor_touch_the_inputs():
    """Later calls of one signature refill the kernel's arrays in place: an earlier result, the caller's
    ``y0`` and concurrent calls from threads must not see that."""
    import concurrent.futures

    t_eval = np.linspace(0.0, 1.0, 5)
    y0 = np.array([1.0, 9.0, 2.0, 9.0])[::2]             # a strided view: [1.0, 2.0]
    kw = dict(t_eval=t_eval, args=(2.0, 0.0), rtol=1e-10, atol=1e-12, backend="c")
    first = sciml.solve_ivp(counted_decay, (0.0, 1.0), y0, **kw)
    kept = first.y.copy()
    sciml.solve_ivp(counted_decay, (0.0, 1.0), 3.0 * y0, **kw)
    np.testing.assert_array_equal(first.y, kept)
    np.testing.assert_array_equal(y0, [1.0, 2.0])
    scales = np.linspace(0.5, 4.0, 16)
    one_by_one = [sciml.solve_ivp(counted_decay, (0.0, 1.0), s * y0, **kw).y for s in scales]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda s: sciml.solve_ivp(counted_decay, (0.0, 1.0), s * y0, **kw).y, scales))
    for s, alone, y in zip(scales, one_by_one, threaded):
        np.testing.assert_array_equal(y, alone, err_msg=str(s))


def test_c_backend_reports_failures_like_the_jax_backend():
    t_eval = np.array([0.0, 0.3, 0.6, 0.9, 1.2, 1.5])
    c, j = (sciml.solve_ivp(blow_up, (0.0, 2.0), [1.0], t_eval=t_eval, rtol=1e-8, atol=1e-10, backend=b)
            for b in ("c", "jax"))
    assert (c.status, c.success, c.message) == (j.status, j.success, j.message)
    np.testing.assert_array_equal(c.t, j.t)
    np.testing.assert_allclose(c.y, j.y, rtol=1e-9)
    few = [sciml.solve_ivp(lotka_volterra, T_SPAN, Y0, args=ARGS, t_eval=T_EVAL, max_steps=10, backend=b)
           for b in ("c", "jax")]
    assert few[0].message == few[1].message and "max_steps" in few[0].message


@pytest.mark.parametrize("call, reason", [
    (dict(), "t_eval"),
    (dict(t_eval=T_EVAL, dense_output=True), "dense_output"),
    (dict(t_eval=T_EVAL, events=prey_extremum), "events"),
    (dict(t_eval=T_EVAL, method=sciml.solvers.Kvaerno5()), "Kvaerno5"),   # BDF, Radau run in the kernel
])
def test_c_backend_names_what_it_does_not_serve(call, reason):
    with pytest.raises(ValueError, match=rf"backend=\"c\"` does not serve.*{reason}.*backend=\"jax\""):
        ours(backend="c", **call)
    assert ours(**call).success  # "auto" runs these with JAX


def looping_decay(t, y):
    """A vector field with a loop in it, which the C translator does not take."""
    return jax.lax.fori_loop(0, 3, lambda i, v: v - y / 3.0, jnp.zeros_like(y))


def test_auto_falls_back_to_jax_for_a_fun_the_kernel_cannot_translate():
    t_eval = np.linspace(0.0, 1.0, 3)
    with pytest.raises(UnsupportedPrimitiveError):
        sciml.solve_ivp(looping_decay, (0.0, 1.0), [1.0], t_eval=t_eval, backend="c")
    for _ in range(2):  # the second call goes straight to JAX
        res = sciml.solve_ivp(looping_decay, (0.0, 1.0), [1.0], t_eval=t_eval, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(res.y[0], np.exp(-t_eval), rtol=1e-8)


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match=r"`backend` must be \"auto\", \"jax\" or \"c\"; got 'gpu'"):
        ours(t_eval=T_EVAL, backend="gpu")


@pytest.mark.parametrize("backend", ["jax", "c"])
def test_max_step_bounds_every_step(backend):
    t_eval = None if backend == "jax" else np.linspace(0.0, 10.0, 3)
    res = ours(max_step=0.05, t_eval=t_eval, backend=backend, rtol=1e-6, atol=1e-9)
    free = ours(t_eval=t_eval, backend=backend, rtol=1e-6, atol=1e-9)
    assert res.success and res.nfev >= 6 * 200 > free.nfev  # at least 200 steps of 6 evaluations
    if t_eval is None:
        assert np.diff(res.t).max() <= 0.05 * (1 + 1e-12)
