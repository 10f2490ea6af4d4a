"""The adjoint menu's behaviour beyond the oracle matrix: pytrees, time endpoints, reversed time,
events, forward mode and higher derivatives, checkpoints, Auto's choices, and the errors that name an
alternative."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sciml
from sciml import adjoints as A
from sciml import solvers as S

CONTINUOUS = [A.Backsolve(), A.Interpolating(), A.Quadrature()]
ALL = [A.Direct(), A.Direct(checkpoints=3), A.Interpolating(checkpoints=3), A.Forward()] + CONTINUOUS


# -- pytree state and args, time endpoints, reversed time: closed forms ---------------------------
def oscillator(t, y, args):
    return {"x": y["v"], "v": -args["w"] ** 2 * y["x"]}


def oscillator_exact(x0, v0, w, tau):
    return x0 * jnp.cos(w * tau) + v0 / w * jnp.sin(w * tau)


SAVE = jnp.array([0.4, 0.9, 1.3])


def oscillator_loss(theta, adjoint):
    """x at three save times plus x(t1): a pytree state, pytree args, both t_span ends differentiable."""
    sol = sciml.solve(oscillator, {"x": theta["x0"], "v": theta["v0"]}, (theta["t0"], theta["t1"]),
                      args={"w": theta["w"], "unused_label": "spring"}, saveat=jnp.append(SAVE, theta["t1"]),
                      rtol=1e-10, atol=1e-10, adjoint=adjoint)
    return jnp.sum(sol.ys["x"])


def oscillator_loss_exact(theta):
    ts = jnp.append(SAVE, theta["t1"])
    return jnp.sum(oscillator_exact(theta["x0"], theta["v0"], theta["w"], ts - theta["t0"]))


THETA = {"x0": jnp.asarray(1.0), "v0": jnp.asarray(0.5), "w": jnp.asarray(1.7), "t0": jnp.asarray(0.1),
         "t1": jnp.asarray(2.0)}
_GRAD_OSC = jax.jit(jax.grad(oscillator_loss), static_argnums=1)


@pytest.mark.parametrize("method", ALL, ids=repr)
def test_gradients_wrt_pytree_state_args_and_both_time_endpoints(method):
    g = _GRAD_OSC(THETA, method)
    exact = jax.grad(oscillator_loss_exact)(THETA)
    for k in THETA:
        np.testing.assert_allclose(float(g[k]), float(exact[k]), rtol=1e-7, atol=1e-9, err_msg=k)


@pytest.mark.parametrize("method", [A.Direct(), A.Backsolve(), A.Interpolating(), A.Forward()], ids=repr)
def test_gradients_of_a_solve_backward_in_time(method):
    def loss(theta):
        sol = sciml.solve(oscillator, {"x": theta["x0"], "v": theta["v0"]}, (2.0, 0.0), args={"w": theta["w"]},
                          saveat=jnp.array([1.5, 0.5]), rtol=1e-10, atol=1e-10, adjoint=method)
        return jnp.sum(sol.ys["x"])

    def exact(theta):
        return jnp.sum(oscillator_exact(theta["x0"], theta["v0"], theta["w"], jnp.array([1.5, 0.5]) - 2.0))

    theta = {k: THETA[k] for k in ("x0", "v0", "w")}
    g, e = jax.jit(jax.grad(loss))(theta), jax.grad(exact)(theta)
    for k in theta:
        np.testing.assert_allclose(float(g[k]), float(e[k]), rtol=1e-7, err_msg=k)


# -- terminal events --------------------------------------------------------------------------------
def _fall(t, y, g):
    return jnp.stack([y[1], -g])


_GROUND = sciml.Event(lambda t, y, g: y[0], direction=-1)


@pytest.mark.parametrize("method", [A.Direct(), A.Forward()], ids=repr)
def test_terminal_event_time_and_state_are_differentiated_by_the_implicit_function(method):
    """A ball dropped from h under gravity g lands at t* = sqrt(2h/g) with speed -sqrt(2hg)."""
    def landing(g, h):
        sol = sciml.solve(_fall, jnp.stack([h, 0.0]), (0.0, 5.0), args=g, events=[_GROUND], rtol=1e-10,
                          atol=1e-10, adjoint=method)
        return jnp.stack([sol.t_final, sol.y_final[1], sol.event_t[0]])

    jac = jax.jit(jax.jacrev(landing, argnums=(0, 1)))(9.81, 10.0)
    t_star = lambda g, h: jnp.sqrt(2 * h / g)  # noqa: E731
    v_star = lambda g, h: -jnp.sqrt(2 * h * g)  # noqa: E731
    for row, exact in ((0, t_star), (1, v_star), (2, t_star)):
        for arg in (0, 1):
            expected = jax.grad(exact, argnums=arg)(9.81, 10.0)
            np.testing.assert_allclose(float(jac[arg][row]), float(expected), rtol=1e-7)


@pytest.mark.parametrize("method", CONTINUOUS, ids=repr)
def test_continuous_adjoints_refuse_events_and_name_an_alternative(method):
    with pytest.raises(NotImplementedError, match="events.*Direct"):
        jax.grad(lambda g: sciml.solve(_fall, jnp.array([10.0, 0.0]), (0.0, 5.0), args=g, events=[_GROUND],
                                       adjoint=method).t_final)(9.81)


@pytest.mark.parametrize("method", CONTINUOUS + [A.Direct(checkpoints=3)], ids=repr)
def test_step_records_are_refused_with_the_alternative_named(method):
    with pytest.raises(NotImplementedError, match="Direct"):
        sciml.solve(lambda t, y, k: -k * y, jnp.ones(1), (0.0, 1.0), args=1.0, saveat="steps", adjoint=method)


# -- forward mode and higher derivatives --------------------------------------------------------------
def _decay_end(k, method=A.Forward()):
    sol = sciml.solve(lambda t, y, k: -k * y, jnp.array([2.0]), (0.0, 1.5), args=k, rtol=1e-11, atol=1e-11,
                      adjoint=method)
    return sol.ys[-1, 0]


def test_forward_supports_jvp_jacfwd_grad_and_hessian():
    """y(T) = 2 exp(-k T): every derivative is known."""
    k, T = 0.7, 1.5
    y = 2 * np.exp(-k * T)
    _, tangent = jax.jvp(_decay_end, (k,), (1.0,))
    np.testing.assert_allclose(float(tangent), -T * y, rtol=1e-8)
    np.testing.assert_allclose(float(jax.jacfwd(_decay_end)(k)), -T * y, rtol=1e-8)
    np.testing.assert_allclose(float(jax.grad(_decay_end)(k)), -T * y, rtol=1e-8)
    np.testing.assert_allclose(float(jax.hessian(_decay_end)(k)), T * T * y, rtol=1e-7)


def test_direct_is_reverse_mode_only_and_jax_says_so():
    with pytest.raises(TypeError, match="custom_vjp"):
        jax.jvp(functools.partial(_decay_end, method=A.Direct()), (0.7,), (1.0,))


def test_forward_reports_the_same_solve_as_direct():
    kw = dict(args=0.7, saveat=jnp.linspace(0, 1, 4), rtol=1e-8, atol=1e-8)
    f = lambda t, y, k: -k * y  # noqa: E731
    a = sciml.solve(f, jnp.ones(2), (0.0, 1.0), adjoint=A.Forward(), **kw)
    b = sciml.solve(f, jnp.ones(2), (0.0, 1.0), adjoint=A.Direct(), **kw)
    np.testing.assert_array_equal(np.asarray(a.ys), np.asarray(b.ys))
    assert {k: int(v) for k, v in a.stats.items()} == {k: int(v) for k, v in b.stats.items()}


# -- checkpoints ------------------------------------------------------------------------------------
def test_an_interval_longer_than_its_share_of_max_steps_fails_loudly():
    """Each of k intervals may take ceil(max_steps / k) steps. With `max_steps` barely above what the
    whole solve takes, some interval needs more than its share: the solve fails with the usual
    `max_steps` error instead of recording past its buffer."""
    f = lambda t, y, a: -50.0 * (y - jnp.cos(t))  # noqa: E731
    sol = sciml.solve(f, jnp.array([3.0]), (0.0, 10.0), rtol=1e-8, atol=1e-8, max_steps=10_000)
    n = int(sol.stats["naccept"])
    with pytest.raises(sciml.SolveError, match="max_steps"):
        sciml.solve(f, jnp.array([3.0]), (0.0, 10.0), rtol=1e-8, atol=1e-8, max_steps=n + 10,
                    adjoint=A.Direct(checkpoints=8))


@pytest.mark.parametrize("bad", [0, -2, 2.5, True])
def test_checkpoints_must_be_a_positive_int(bad):
    with pytest.raises(ValueError, match="checkpoints"):
        A.Direct(checkpoints=bad)
    with pytest.raises(ValueError, match="checkpoints"):
        A.Interpolating(checkpoints=bad)


# -- Auto ---------------------------------------------------------------------------------------------
class _Stiff(S.Tsit5):
    stiff = True


def _mlp_params(width):
    model = sciml.layers.MLP(2, 2, width=width, depth=2, act="tanh")
    return model.init(jax.random.PRNGKey(0), dtype=jnp.float64)[0]


@pytest.mark.parametrize("y0, args, solver, kw, expected", [
    (jnp.ones(2), jnp.ones(4), S.Tsit5(), {}, A.Forward()),
    (jnp.ones(2), _mlp_params(64), S.Tsit5(), {}, A.Direct()),
    (jnp.ones(200), jnp.ones(50), _Stiff(), {}, A.Interpolating()),
    (jnp.ones(2), _mlp_params(64), _Stiff(), {}, A.Quadrature()),
    (jnp.ones(2), _mlp_params(64), S.Tsit5(), {"events": True}, A.Direct()),
    (jnp.ones(2), _mlp_params(64), _Stiff(), {"saveat": "dense"}, A.Direct()),
    (jnp.ones(1000), jnp.ones(10), S.Tsit5(), {"max_steps": 10 ** 6}, A.Direct(checkpoints=1000)),
    (jnp.ones(2), _mlp_params(64), S.BDF(), {"events": True}, A.Forward()),
], ids=["few-params", "neural-ode", "stiff", "stiff-many-params", "events", "dense", "memory",
        "events-multistep"])
def test_auto_choice_and_its_one_line_reason(y0, args, solver, kw, expected):
    method, reason = A.Auto().choose(None, y0, args, solver, **kw)
    assert method == expected
    assert reason.startswith(type(expected).__name__) and "\n" not in reason


_PICKED = []


class _Recording(A.Auto):
    def choose(self, *args, **kw):
        out = super().choose(*args, **kw)
        _PICKED.append(out[0])
        return out


@pytest.mark.parametrize("args", [jnp.ones(3), _mlp_params(8)], ids=["small", "mlp"])
def test_auto_picks_for_the_flat_problem_what_choose_says_for_the_users_pytrees(args):
    y0 = {"a": jnp.ones(2), "b": jnp.zeros((2, 2))}
    f = lambda t, y, p: jax.tree_util.tree_map(lambda x: -x, y)  # noqa: E731
    _PICKED.clear()
    sciml.solve(f, y0, (0.0, 1.0), args=args, adjoint=_Recording())
    assert _PICKED == [A.Auto().choose(f, y0, args, S.Tsit5())[0]]


def test_default_adjoint_gives_the_gradient():
    g = jax.grad(lambda k: sciml.solve(lambda t, y, k: -k * y, jnp.ones(1), (0.0, 1.0), args=k, rtol=1e-10,
                                       atol=1e-10).ys[-1, 0])(2.0)
    np.testing.assert_allclose(float(g), -np.exp(-2.0), rtol=1e-8)


@pytest.mark.parametrize("method", CONTINUOUS, ids=repr)
def test_a_failed_backward_solve_gives_nan_gradients_not_wrong_ones(method):
    """The forward solve needs a few steps; the backward one must land on all 40 save times, more than
    `max_steps=20` allows."""
    def loss(k):
        sol = sciml.solve(lambda t, y, k: -k * y, jnp.ones(1), (0.0, 1.0), args=k, saveat=jnp.linspace(0.05, 1, 40),
                          max_steps=20, adjoint=method)
        return jnp.sum(sol.ys)

    assert np.isfinite(float(loss(0.5)))
    assert np.isnan(float(jax.grad(loss)(0.5)))


@pytest.mark.parametrize("method", ALL, ids=repr)
def test_float32_state_with_float64_times_differentiates_each_in_its_own_dtype(method):
    """y(t) = y0 exp(-k t): the state and its parameters stay float32, the time endpoint float64."""
    def loss(y0, k, t1):
        sol = sciml.solve(lambda t, y, k: -k * y, y0, (jnp.float64(0.0), t1), args=k,
                          saveat=jnp.array([0.3, 0.6], jnp.float64), rtol=1e-6, atol=1e-6, adjoint=method)
        return jnp.sum(sol.ys) + jnp.sum(sol.y_final)

    y0, k, t1 = jnp.ones(2, jnp.float32), jnp.float32(0.7), jnp.float64(1.0)
    g_y0, g_k, g_t1 = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(y0, k, t1)
    assert g_y0.dtype == jnp.float32 and g_k.dtype == jnp.float32 and g_t1.dtype == jnp.float64
    ts = np.array([0.3, 0.6, 1.0])   # the save times and t1
    np.testing.assert_allclose(np.asarray(g_y0), np.sum(np.exp(-0.7 * ts)), rtol=1e-4)
    np.testing.assert_allclose(float(g_k), -2 * np.sum(ts * np.exp(-0.7 * ts)), rtol=1e-4)
    np.testing.assert_allclose(float(g_t1), -2 * 0.7 * np.exp(-0.7), rtol=1e-4)
