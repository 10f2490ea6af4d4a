"""`sciml.solve_ivp` takes scipy's arguments and returns scipy's result, detail by detail.

Each test makes the same call to `scipy.integrate.solve_ivp` (the oracle for shapes, types, messages
and warnings) and to ours; values are checked against analytic solutions. The fields are written with
`jax.numpy` (a NumPy field is the Python-callable path's concern, tested with it).
"""

import numpy as np
import pytest
import scipy.integrate
import scipy.sparse

import jax.numpy as jnp
import sciml
from sciml.solvers._sparsity import JacobianSparsity


def oscillator(t, y):
    return [y[1], -y[0]]                       # a list, scipy's most common style


def oscillator_np(t, y):
    return [y[1], -y[0]]


def crossing(t, y):
    return y[0]


def both(call, **kw):
    """``call`` made to scipy and to sciml with the same arguments."""
    return call(scipy.integrate.solve_ivp, oscillator_np, **kw), call(sciml.solve_ivp, oscillator, **kw)


@pytest.mark.parametrize("returned", [list, tuple, jnp.stack])
def test_fun_may_return_a_list_tuple_or_array(returned):
    res = sciml.solve_ivp(lambda t, y: returned([y[1], -y[0]]), (0.0, 1.0), [1.0, 0.0], t_eval=[1.0],
                          rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res.y[:, 0], [np.cos(1.0), -np.sin(1.0)], rtol=1e-8)


def test_vectorized_fun_is_called_on_columns():
    seen = []

    def fun(t, y):
        seen.append(y.shape)
        return jnp.stack([y[1], -y[0]])          # (2, k) in, (2, k) out

    res = sciml.solve_ivp(fun, (0.0, 1.0), [1.0, 0.0], t_eval=[1.0], vectorized=True, rtol=1e-10, atol=1e-12)
    assert seen and all(shape == (2, 1) for shape in seen)
    np.testing.assert_allclose(res.y[:, 0], [np.cos(1.0), -np.sin(1.0)], rtol=1e-8)


@pytest.mark.parametrize("args", [-1, 2.5])
def test_args_that_do_not_unpack_are_scipys_type_error(args):
    for solve in (scipy.integrate.solve_ivp, sciml.solve_ivp):
        with pytest.raises(TypeError, match=r"Supplied 'args' cannot be unpacked. Please supply `args` as a tuple"):
            solve(lambda t, y, a: -a * y, (0.0, 1.0), [1.0], args=args)


def test_args_may_be_a_list_or_none():
    decay = lambda t, y, k=1.0: -k * y  # noqa: E731
    for args in ([2.0], None):
        res = sciml.solve_ivp(decay, (0.0, 1.0), [1.0], args=args, t_eval=[1.0], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(res.y[0, 0], np.exp(-(2.0 if args else 1.0)), rtol=1e-8)


@pytest.mark.parametrize("terminal", [3, 4])
def test_integer_terminal_stops_at_that_crossing(terminal):
    def event(t, y):
        return y[0]

    event.terminal = terminal
    res = sciml.solve_ivp(oscillator, (0.0, 100.0), [1.0, 0.0], events=event, rtol=1e-10, atol=1e-12)
    expected = (np.arange(terminal) + 0.5) * np.pi          # cos t = 0
    np.testing.assert_allclose(res.t_events[0], expected, rtol=1e-8)
    assert res.status == 1 and res.y_events[0].shape == (terminal, 2)
    np.testing.assert_allclose(res.t[-1], expected[-1], rtol=1e-8)


@pytest.mark.parametrize("terminal", [-1, 3.5, "yes"])
def test_terminal_must_be_a_bool_or_positive_int(terminal):
    def event(t, y):
        return y[0]

    event.terminal = terminal
    with pytest.raises(ValueError):               # scipy's message, except for "yes" (int()'s own)
        scipy.integrate.solve_ivp(oscillator_np, (0.0, 10.0), [1.0, 0.0], events=event)
    with pytest.raises(ValueError, match=r"The `terminal` attribute of each event must be a boolean or positive "
                                         rf"integer; event 0 \('event'\) has terminal={terminal!r}"):
        sciml.solve_ivp(oscillator, (0.0, 10.0), [1.0, 0.0], events=event)


def test_an_event_without_crossings_has_scipys_empty_records():
    def never(t, y):
        return 5.0 + y[0]

    ref, res = both(lambda solve, f: solve(f, (0.0, 1.0), [1.0, 0.0], events=[crossing, never]))
    assert [y.shape for y in res.y_events] == [y.shape for y in ref.y_events] == [(0,), (0,)]
    assert [t.shape for t in res.t_events] == [t.shape for t in ref.t_events] == [(0,), (0,)]


@pytest.mark.parametrize("method", ["RK45", "BDF"])
def test_an_event_zero_at_t0_is_recorded_there_as_scipy_does(method):
    """scipy counts an exact zero at t0 that the first step leaves (in the event's direction) as a
    crossing at t0; a terminal one stops there. NumPy fields: RK45 runs the kernel with events on the
    host, BDF the XLA loop's callbacks; both follow the same rule as the traced path."""
    def field(t, y):
        return np.array([1.0, -2.0])

    def rising(t, y):
        return y[0]

    def falling(t, y):
        return y[1]

    for direction in (0, 1, -1):
        rising.direction = falling.direction = direction
        ref, res = (solve(field, (0.0, 1.0), [0.0, 0.0], events=[rising, falling], method=method)
                    for solve in (scipy.integrate.solve_ivp, sciml.solve_ivp))
        assert [list(t) for t in res.t_events] == [list(t) for t in ref.t_events], direction
        for y, y_ref in zip(res.y_events, ref.y_events):
            np.testing.assert_array_equal(y, y_ref)
    rising.terminal, rising.direction = True, 0
    ref, res = (solve(field, (0.0, 1.0), [0.0, 0.0], events=rising, method=method)
                for solve in (scipy.integrate.solve_ivp, sciml.solve_ivp))
    assert res.status == ref.status == 1 and list(res.t) == list(ref.t) == [0.0, 0.0]   # scipy: t0 twice


def test_t_eval_before_a_terminal_event_gives_scipys_empty_lists():
    def stop(t, y):
        return t - 0.5

    stop.terminal = True
    ref, res = both(lambda solve, f: solve(f, (0.0, 2.0), [1.0, 0.0], t_eval=[1.0, 2.0], events=stop))
    assert res.t == ref.t == [] and res.y == ref.y == []
    assert res.status == ref.status == 1


def test_zero_span_dense_output_is_the_initial_state():
    ref, res = both(lambda solve, f: solve(f, (4.0, 4.0), [2.0, 3.0], dense_output=True))
    for r in (ref, res):
        np.testing.assert_array_equal(r.sol(4.0), [2.0, 3.0])
        np.testing.assert_array_equal(r.sol([4.0, 5.0]), [[2.0, 2.0], [3.0, 3.0]])


def test_empty_state_gives_scipys_result():
    ref, res = both(lambda solve, f: solve(lambda t, y: jnp.zeros(0), (0.0, np.inf), np.zeros(0), dense_output=True))
    np.testing.assert_array_equal(res.t, ref.t)
    assert res.y.shape == ref.y.shape == (0, 2) and res.success and res.status == 0
    assert res.sol(10.0).shape == ref.sol(10.0).shape == (0,)
    assert res.sol([1.0, 2.0, 3.0]).shape == ref.sol([1.0, 2.0, 3.0]).shape == (0, 3)


def test_dense_solution_has_steps_and_interpolants():
    res = sciml.solve_ivp(oscillator, (0.0, 2.0), [1.0, 0.0], dense_output=True, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(res.sol.ts, res.t)
    assert len(res.sol.interpolants) == len(res.t) - 1 == res.sol.n_segments
    step = res.sol.interpolants[1]
    mid = 0.5 * (step.t_old + step.t)
    np.testing.assert_allclose(step(mid), [np.cos(mid), -np.sin(mid)], rtol=1e-8)
    assert res.sol(mid).shape == (2,) and res.sol([mid, mid]).shape == (2, 2)
    assert (res.sol.t_min, res.sol.t_max) == (0.0, 2.0)


def test_first_step_is_taken_exactly():
    for method in ("RK45", "Tsit5", "Rodas5P"):
        res = sciml.solve_ivp(oscillator, (5.0, 1.0), [1.0, 0.0], first_step=0.1, method=method, rtol=1e-3)
        np.testing.assert_allclose(abs(res.t[1] - 5.0), 0.1, rtol=1e-14)   # 5 - 4.9 in float64


def test_rtol_below_100_eps_is_raised_with_scipys_warning():
    with pytest.warns(UserWarning, match=r"At least one element of `rtol` is too small"):
        res = sciml.solve_ivp(oscillator, (0.0, 1.0), [1.0, 0.0], rtol=[1e-1, 1e-16], t_eval=[1.0])
    floor = sciml.solve_ivp(oscillator, (0.0, 1.0), [1.0, 0.0], rtol=[1e-1, 100 * np.finfo(float).eps],
                            t_eval=[1.0])
    np.testing.assert_array_equal(res.y, floor.y)


@pytest.mark.parametrize("method", ["RK45", "BDF", "Rodas5P", "Rosenbrock23", "Kvaerno5", "Radau"])
def test_complex_state(method):
    res = sciml.solve_ivp(lambda t, y: (-1 + 2j) * y, (0.0, 1.0), [0.5 + 1j], method=method, t_eval=[1.0],
                          rtol=1e-8, atol=1e-10)
    assert res.y.dtype == np.complex128
    np.testing.assert_allclose(res.y[0, 0], (0.5 + 1j) * np.exp(-1 + 2j), rtol=1e-5)   # Rosenbrock23: order 2


# -- Jacobians ---------------------------------------------------------------------------------------
def linear(t, y):
    return jnp.stack([-y[0] - 5 * y[1], y[0] + y[1]])


J_LINEAR = np.array([[-1.0, -5.0], [1.0, 1.0]])


@pytest.mark.parametrize("jac", [J_LINEAR, scipy.sparse.csc_matrix(J_LINEAR), lambda t, y: jnp.asarray(J_LINEAR)],
                         ids=["array", "sparse", "callable"])
def test_jac_array_sparse_or_callable_gives_the_autodiff_solve(jac):
    plain = sciml.solve_ivp(linear, (0.0, 2.0), [0.0, 2.0], method="Rodas5P", t_eval=[2.0], rtol=1e-8, atol=1e-10)
    res = sciml.solve_ivp(linear, (0.0, 2.0), [0.0, 2.0], method="Rodas5P", t_eval=[2.0], rtol=1e-8, atol=1e-10,
                          jac=jac)
    np.testing.assert_allclose(res.y, plain.y, rtol=1e-12)
    np.testing.assert_allclose(res.y[:, 0], [-5 * np.sin(4.0), 2 * np.cos(4.0) + np.sin(4.0)], rtol=1e-6)
    assert res.njev == (0 if not callable(jac) else plain.njev)        # scipy: a constant jac is never evaluated


def test_jac_of_the_wrong_shape_names_the_argument():
    with pytest.raises(ValueError, match=r"`jac` must be a callable jac\(t, y, \*args\) or a constant \(n, n\) = "
                                         r"\(2, 2\) array"):
        sciml.solve_ivp(linear, (0.0, 1.0), [0.0, 2.0], method="BDF", jac=np.eye(3))


def banded(t, y, args):
    inner = jnp.concatenate([jnp.zeros(1), y[:-1]])
    return -jnp.arange(1.0, y.shape[0] + 1) * y + 0.5 * inner ** 2


def test_colored_jacobian_is_jacfwd_with_fewer_products():
    import jax

    n = 9
    pattern = np.eye(n) + np.eye(n, k=-1)
    sparsity = JacobianSparsity.from_matrix(scipy.sparse.coo_matrix(pattern))
    assert sparsity.n_colors == 2
    y = jnp.linspace(0.1, 0.9, n)
    np.testing.assert_array_equal(sparsity.jacobian(banded)(0.0, y, None), jax.jacfwd(banded, 1)(0.0, y, None))
    # the pattern decides the products: a diagonal one puts every column into one group, one product
    # (the row sums) read on the diagonal, which is what scipy's grouped differences give too
    diag_only = JacobianSparsity.from_matrix(np.eye(n)).jacobian(banded)(0.0, y, None)
    np.testing.assert_allclose(diag_only, np.diag(jax.jacfwd(banded, 1)(0.0, y, None).sum(axis=1)), rtol=1e-15)


def test_jac_sparsity_in_solve_and_solve_ivp():
    n = 9
    pattern = np.eye(n) + np.eye(n, k=-1)
    y0 = np.linspace(0.1, 0.9, n)
    plain = sciml.solve(banded, y0, (0.0, 1.0), solver=sciml.solvers.Rodas5P(), rtol=1e-8, atol=1e-10)
    sparse = sciml.solve(banded, y0, (0.0, 1.0), solver=sciml.solvers.Rodas5P(), rtol=1e-8, atol=1e-10,
                         jac_sparsity=pattern)
    np.testing.assert_allclose(sparse.ys, plain.ys, rtol=1e-12)
    res = sciml.solve_ivp(lambda t, y: banded(t, y, None), (0.0, 1.0), y0, method="Rodas5P", t_eval=[1.0],
                          rtol=1e-8, atol=1e-10, jac_sparsity=scipy.sparse.csc_matrix(pattern))
    np.testing.assert_allclose(res.y[:, 0], np.asarray(plain.ys[0]), rtol=1e-8)
    with pytest.raises(ValueError, match=r"`jac_sparsity` must be an \(n, n\) array or sparse matrix"):
        sciml.solve(banded, y0, (0.0, 1.0), solver=sciml.solvers.Rodas5P(), jac_sparsity=np.eye(3))
    with pytest.raises(ValueError, match=r"`jac_sparsity=` is used by the stiff solvers"):
        sciml.solve(banded, y0, (0.0, 1.0), jac_sparsity=pattern)
