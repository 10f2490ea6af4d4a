"""Events: zero crossings of ``cond(t, y, args)``, located on the dense output, terminal or recorded.

Event times are checked against closed-form crossing times: a bouncing ball (piecewise quadratic),
a logistic population falling to a threshold, and the zeros of sin(t).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sciml
from sciml import Event, Status
from sciml import solvers as S

TIGHT = dict(rtol=1e-10, atol=1e-10)


def to_numpy(sol):
    """The solution with numpy leaves (indexing jax arrays with masks would compile a kernel each time)."""
    return jax.tree_util.tree_map(np.asarray, sol)


def solve(*args, **kwargs):
    return to_numpy(sciml.solve(*args, **kwargs))


# -- bouncing ball: y = [h, v], h'' = -g -----------------------------------------------------
G, H0, RESTITUTION = 9.81, 10.0, 0.9


def ball(t, y, g):
    return jnp.stack([y[1], -g])


GROUND = Event(lambda t, y, g: y[0], direction=-1)


@jax.jit
def _fall(y0, t0, g):
    return sciml.solve(ball, y0, (t0, t0 + 100.0), args=g, events=[GROUND], **TIGHT)


def fall(y0, t0, g):
    """From (t0, y0) until the ball hits the ground."""
    return to_numpy(_fall(jnp.asarray(y0, jnp.float64), jnp.asarray(t0, jnp.float64), g))


def impact_times(n):
    """t_1 = sqrt(2 h0 / g); each bounce then flies 2 v_k / g with v_k = e^k v_1."""
    t1 = np.sqrt(2 * H0 / G)
    v1 = G * t1
    times = [t1]
    for k in range(1, n):
        times.append(times[-1] + 2 * RESTITUTION**k * v1 / G)
    return np.array(times), v1 * RESTITUTION ** np.arange(n)


def test_bouncing_ball_impacts_at_the_analytic_times():
    expected_t, expected_speed = impact_times(5)
    y, t = np.array([H0, 0.0]), 0.0
    for k in range(5):
        sol = fall(y, t, G)
        assert int(sol.status) == Status.EVENT and int(sol.event) == 0
        assert abs(float(sol.t_final) - expected_t[k]) < 1e-9
        assert float(sol.event_t[0]) == float(sol.t_final)
        assert abs(float(sol.y_final[0])) < 1e-9                     # on the ground
        assert abs(float(sol.y_final[1]) + expected_speed[k]) < 1e-8  # falling at the impact speed
        # Restart from where it stopped with the velocity reversed and damped.
        y, t = np.array([sol.y_final[0], -RESTITUTION * sol.y_final[1]]), sol.t_final


def test_event_state_is_the_state_at_the_event_time():
    sol = fall(jnp.array([H0, 0.0]), 0.0, G)
    np.testing.assert_allclose(sol.event_ys[0, 0], sol.y_final, rtol=0, atol=1e-12)
    assert int(sol.event_count[0]) == 1


def test_event_on_a_pytree_state():
    def ball_tree(t, y, g):
        return {"h": y["v"], "v": -g * jnp.ones_like(y["v"])}

    ground = Event(lambda t, y, g: y["h"], direction=-1)
    y0 = {"h": jnp.asarray(H0), "v": jnp.asarray(0.0)}
    sol = solve(ball_tree, y0, (0.0, 5.0), args=G, events=[ground], **TIGHT)
    t1 = np.sqrt(2 * H0 / G)
    assert abs(float(sol.event_t[0]) - t1) < 1e-9
    assert set(sol.y_final) == {"h", "v"} and set(sol.event_ys) == {"h", "v"}
    assert sol.event_ys["v"].shape == (1, 1)
    np.testing.assert_allclose(sol.event_ys["v"][0, 0], -G * t1, rtol=1e-9)
    np.testing.assert_allclose(sol.y_final["h"], 0.0, atol=1e-9)


def test_float32_event_stays_float32():
    y0 = jnp.array([H0, 0.0], jnp.float32)
    sol = solve(ball, y0, (0.0, 5.0), args=jnp.float32(G), events=[GROUND], rtol=1e-5, atol=1e-5)
    assert sol.event_t.dtype == jnp.float32 and sol.t_final.dtype == jnp.float32
    assert sol.y_final.dtype == jnp.float32 and sol.event_ys.dtype == jnp.float32
    assert abs(float(sol.event_t[0]) - np.sqrt(2 * H0 / G)) < 1e-5
    assert abs(float(sol.y_final[0])) < 1e-4


# -- a population falling below a threshold -----------------------------------------------------
def logistic(t, y, p):
    """y' = r y (1 - y / K) with p = (r, K, threshold)."""
    return p[0] * y * (1.0 - y / p[1])


# The threshold comes from `args`: event functions see the same args as f.
BELOW = Event(lambda t, y, p: y[0] - p[2], direction=-1)
POP_TS = np.linspace(0.0, 3.0, 13)


def _population(p):
    return sciml.solve(logistic, jnp.array([2.0 * p[1]]), (0.0, 3.0), args=p, events=[BELOW],
                       saveat=POP_TS, throw=False, **TIGHT)


_population_jit = jax.jit(_population)
_population_batch_jit = jax.jit(jax.vmap(_population))


def population(p):
    return to_numpy(_population_jit(p))


def population_batch(params):
    return to_numpy(_population_batch_jit(params))


def logistic_exact(t, r, K, y0):
    return K / (1.0 + (K / y0 - 1.0) * np.exp(-r * np.asarray(t)))


def crossing_time(r, K, threshold):
    """From y0 = 2K the population falls towards K: y = K / (1 - e^{-rt} / 2) = threshold."""
    return -np.log(2.0 * (1.0 - K / threshold)) / r


def test_population_stops_at_the_exact_threshold_crossing():
    r, K, thr = 1.5, 100.0, 150.0
    sol = population(jnp.array([r, K, thr]))
    assert int(sol.status) == Status.EVENT and int(sol.event) == 0
    t_star = crossing_time(r, K, thr)                       # ln(1.5) / 1.5 = 0.2703
    assert abs(float(sol.t_final) - t_star) < 1e-9
    np.testing.assert_allclose(sol.y_final, [thr], rtol=1e-9)


def test_save_points_before_a_terminal_event_are_right_and_after_it_nan():
    r, K, thr = 1.5, 100.0, 110.0                           # crosses at t = ln(5.5) / 1.5 = 1.137
    sol = population(jnp.array([r, K, thr]))
    t_star = crossing_time(r, K, thr)
    before = np.asarray(POP_TS) <= t_star
    assert before.sum() == 5
    np.testing.assert_allclose(sol.ys[before, 0], logistic_exact(POP_TS[before], r, K, 2 * K), rtol=1e-8)
    assert np.all(np.isnan(sol.ys[~before]))


def test_events_under_vmap_have_per_trajectory_times():
    params = jnp.array([[1.5, 100.0, 150.0],     # crosses at 0.27
                        [0.5, 100.0, 150.0],     # crosses at 0.81
                        [1.0, 10.0, 12.0],       # crosses at 0.92
                        [1.0, 100.0, 90.0]])     # never: the population stays above K = 100
    sol = population_batch(params)
    expected = [crossing_time(*np.asarray(p)) for p in params[:3]]
    np.testing.assert_allclose(sol.t_final[:3], expected, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(sol.status, [Status.EVENT] * 3 + [Status.SUCCESS])
    np.testing.assert_array_equal(sol.event, [0, 0, 0, -1])
    np.testing.assert_array_equal(sol.event_count[:, 0], [1, 1, 1, 0])
    assert np.isnan(sol.event_t[3, 0]) and float(sol.t_final[3]) == 3.0
    # each trajectory is what it is alone
    for i in range(4):
        alone = population(params[i])
        np.testing.assert_allclose(sol.ys[i], alone.ys, rtol=1e-12, atol=0)


# -- non-terminal events: every crossing counted and recorded ----------------------------------
def sine(t, y, args):
    """y' = cos t, y(0) = 0: y = sin t, zero at t = k pi."""
    return jnp.cos(t) * jnp.ones_like(y)


ZERO_ANY = Event(lambda t, y, a: y[0], terminal=False)
ZERO_UP = Event(lambda t, y, a: y[0], terminal=False, direction=1)
ZERO_DOWN = Event(lambda t, y, a: y[0], terminal=False, direction=-1)


@pytest.fixture(scope="module")
def sine_zeros():
    return solve(sine, jnp.array([0.0]), (0.0, 10.0), events=[ZERO_ANY, ZERO_UP, ZERO_DOWN],
                       event_records=4, saveat=jnp.array([10.0]), **TIGHT)


def test_non_terminal_events_are_counted_by_direction(sine_zeros):
    sol = sine_zeros
    # zeros in (0, 10]: pi (falling), 2 pi (rising), 3 pi (falling); t = 0 is the start, not a crossing
    np.testing.assert_array_equal(sol.event_count, [3, 1, 2])
    assert int(sol.status) == Status.SUCCESS and int(sol.event) == -1
    assert float(sol.t_final) == 10.0
    np.testing.assert_allclose(sol.ys[0, 0], np.sin(10.0), rtol=1e-8)


def test_non_terminal_event_times_and_states_are_recorded(sine_zeros):
    sol = sine_zeros
    pi = np.pi
    expected = np.array([[pi, 2 * pi, 3 * pi, np.nan],
                         [2 * pi, np.nan, np.nan, np.nan],
                         [pi, 3 * pi, np.nan, np.nan]])
    assert sol.event_ts.shape == (3, 4)
    np.testing.assert_allclose(sol.event_ts, expected, rtol=0, atol=1e-9)    # NaN where none
    np.testing.assert_allclose(sol.event_t, expected[:, 0], atol=1e-9)       # the first crossing
    assert sol.event_ys.shape == (3, 4, 1)
    recorded = ~np.isnan(expected)
    np.testing.assert_allclose(sol.event_ys[recorded], 0.0, atol=1e-9)       # sin is zero there
    assert np.all(np.isnan(sol.event_ys[~recorded]))


def test_more_crossings_than_records_counts_all_and_keeps_the_first():
    sol = solve(sine, jnp.array([0.0]), (0.0, 10.0), events=[ZERO_ANY], event_records=2, **TIGHT)
    assert int(sol.event_count[0]) == 3
    np.testing.assert_allclose(sol.event_ts[0], [np.pi, 2 * np.pi], atol=1e-9)


def test_the_terminal_event_that_fires_first_is_reported_among_several():
    events = [Event(lambda t, y, a: y[0] - 2.0),                      # sin never reaches 2
              ZERO_ANY,                                                # non-terminal: recorded
              Event(lambda t, y, a: y[0] + 0.5, direction=-1),         # sin = -1/2 falling: 7 pi / 6
              Event(lambda t, y, a: t - 4.0)]                          # t = 4 > 7 pi / 6 = 3.665
    sol = solve(sine, jnp.array([0.0]), (0.0, 10.0), events=events, event_records=3, **TIGHT)
    assert int(sol.status) == Status.EVENT
    assert int(sol.event) == 2
    assert abs(float(sol.t_final) - 7 * np.pi / 6) < 1e-9
    np.testing.assert_allclose(sol.y_final, [-0.5], atol=1e-9)
    # Crossings up to the stop are recorded; none after it.
    np.testing.assert_array_equal(sol.event_count, [0, 1, 1, 0])
    np.testing.assert_allclose(sol.event_ts[1], [np.pi, np.nan, np.nan], atol=1e-9)
    assert np.isnan(sol.event_t[0]) and np.isnan(sol.event_t[3])


# -- backward in time ---------------------------------------------------------------------------
def growth(t, y, k):
    return k * y


@pytest.mark.parametrize("direction, fires", [(-1, True), (0, True), (1, False)])
def test_backward_integration_event_direction_follows_the_integration(direction, fires):
    # y = e^t integrated from t=3 back to t=0: y falls through 2 at t = ln 2 as time runs backwards.
    ts = np.array([3.0, 2.0, 1.0, 0.5, 0.0])
    event = Event(lambda t, y, k: y[0] - 2.0, direction=direction)
    sol = solve(growth, jnp.array([np.exp(3.0)]), (3.0, 0.0), args=1.0, events=[event], saveat=ts,
                      **TIGHT)
    if fires:
        assert int(sol.status) == Status.EVENT
        assert abs(float(sol.t_final) - np.log(2.0)) < 1e-9
        assert abs(float(sol.event_t[0]) - np.log(2.0)) < 1e-9
        reached = np.asarray(ts) >= np.log(2.0)
        np.testing.assert_allclose(sol.ys[reached, 0], np.exp(ts[reached]), rtol=1e-8)
        assert np.all(np.isnan(sol.ys[~reached]))
    else:
        assert int(sol.status) == Status.SUCCESS and int(sol.event) == -1
        assert np.isnan(sol.event_t[0]) and float(sol.t_final) == 0.0
        np.testing.assert_allclose(sol.ys[:, 0], np.exp(ts), rtol=1e-8)


def test_time_event_backwards():
    sol = solve(growth, jnp.array([1.0]), (3.0, 0.0), args=1.0,
                      events=[Event(lambda t, y, k: t - 1.5)], **TIGHT)
    assert int(sol.status) == Status.EVENT
    assert abs(float(sol.t_final) - 1.5) < 1e-12
    np.testing.assert_allclose(sol.y_final, [np.exp(-1.5)], rtol=1e-8)


# -- fixed steps --------------------------------------------------------------------------------
def test_event_with_a_fixed_step_solver_is_located_inside_the_step():
    sol = solve(growth, jnp.array([1.0]), (0.0, 1.0), args=-1.0, solver=S.RK4(), adaptive=False,
                      dt0=0.01, events=[Event(lambda t, y, k: y[0] - 0.5)])
    # Hermite interpolation of an O(dt^4) solution: the crossing is far inside a 0.01 step.
    assert abs(float(sol.t_final) - np.log(2.0)) < 1e-7


# -- a zero exactly at t0 ------------------------------------------------------------------------
def _leaving_zero(at_start, direction=0):
    """y' = 1 from y0 = 0: cond = y is exactly zero at t0 and positive after."""
    return to_numpy(sciml.solve(lambda t, y, a: jnp.ones(1), jnp.zeros(1), (0.0, 1.0),
                                events=[Event(lambda t, y, a: y[0], terminal=True, direction=direction,
                                              at_start=at_start)]))


def test_a_zero_at_t0_is_not_a_crossing_by_default():
    """So a solve restarted on an event's surface (the bouncing ball above) goes on."""
    sol = _leaving_zero(False)
    assert int(sol.status) == Status.SUCCESS and float(sol.t_final) == 1.0


@pytest.mark.parametrize("direction, fires", [(0, True), (1, True), (-1, False)])
def test_at_start_counts_a_zero_at_t0_left_in_the_events_direction(direction, fires):
    sol = _leaving_zero(True, direction)
    if fires:
        assert int(sol.status) == Status.EVENT and float(sol.t_final) == 0.0 == float(sol.event_t[0])
        assert float(sol.y_final[0]) == 0.0
    else:
        assert int(sol.status) == Status.SUCCESS and float(sol.t_final) == 1.0


def test_event_at_start_must_be_a_bool():
    with pytest.raises(TypeError, match="`Event.at_start` must be a bool; got 1"):
        Event(lambda t, y, a: y[0], at_start=1)


# -- bad events ---------------------------------------------------------------------------------
def test_event_direction_must_be_minus_one_zero_or_one():
    with pytest.raises(ValueError, match=r"`Event.direction` must be -1, 0 or \+1; got 2"):
        Event(lambda t, y, a: y[0], direction=2)


def test_event_cond_must_be_callable():
    with pytest.raises(TypeError, match=r"`Event.cond` must be a callable cond\(t, y, args\)"):
        Event(0.5)


def test_event_cond_must_return_a_scalar():
    with pytest.raises(ValueError, match=r"event 0 must return a scalar; got shape \(2,\).*one `Event` per"):
        sciml.solve(ball, jnp.array([H0, 0.0]), (0.0, 1.0), args=G, events=[Event(lambda t, y, a: y)])


def test_event_cond_must_be_a_continuous_value_not_a_test():
    with pytest.raises(TypeError, match=r"got dtype bool.*not a test such as `y\[0\] < 0`"):
        sciml.solve(ball, jnp.array([H0, 0.0]), (0.0, 1.0), args=G, events=[Event(lambda t, y, a: y[0] < 0)])
