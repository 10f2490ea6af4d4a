"""`sciml.solve(backend=...)`: the forward solve in the generated C kernel (an XLA custom call).

The kernel runs the same method, step control and statuses as the XLA loop, so every case below
compares ``backend="c"`` with ``backend="jax"``: equal step counts and statuses, values equal up to
rounding, dtypes kept. Derivatives always go through the XLA loop of the adjoint, so gradients agree
exactly.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sciml
from sciml import adjoints as A
from sciml import solvers as S


def lotka_volterra(t, y, p):
    return jnp.stack([p[0] * y[0] - p[1] * y[0] * y[1], p[2] * y[0] * y[1] - p[3] * y[1]])


P = jnp.array([1.5, 1.0, 3.0, 1.0])
Y0 = jnp.array([1.0, 1.0])
TS = jnp.linspace(0.0, 10.0, 21)

CASES = {
    "final state": dict(),
    "save points": dict(saveat=TS),
    "backward in time": dict(t_span=(10.0, 0.0), saveat=TS[::-1]),
    "float32": dict(y0=Y0.astype(jnp.float32), args=P.astype(jnp.float32), rtol=1e-5, atol=1e-6),
    "Dopri8, max_step, dt0": dict(solver=S.Dopri8(), max_step=0.3, dt0=1e-3, saveat=TS),
    "fixed steps": dict(solver=S.RK4(), adaptive=False, dt0=0.01, saveat=TS),
    "Rodas5P": dict(solver=S.Rodas5P(), rtol=1e-8, atol=1e-10, saveat=TS),
}


def solve(backend, **kw):
    call = dict(f=lotka_volterra, y0=Y0, t_span=(0.0, 10.0), args=P, rtol=1e-9, atol=1e-9)
    call.update(kw)
    return sciml.solve(call.pop("f"), call.pop("y0"), call.pop("t_span"), backend=backend, **call)


@pytest.mark.parametrize("case", CASES)
def test_c_backend_is_the_jax_solve_up_to_rounding(case):
    c, j = solve("c", **CASES[case]), solve("jax", **CASES[case])
    assert c.ys.dtype == j.ys.dtype == CASES[case].get("y0", Y0).dtype
    assert c.t_final.dtype == j.t_final.dtype
    assert {k: int(v) for k, v in c.stats.items()} == {k: int(v) for k, v in j.stats.items()}
    assert int(c.status) == int(j.status) == 0
    np.testing.assert_array_equal(c.ts, j.ts)
    np.testing.assert_allclose(c.ys, j.ys, rtol=1e-4 if case == "float32" else 1e-9)
    # the next proposed step (for messages) comes from an error estimate near rounding: loosely equal
    np.testing.assert_allclose(c._last_dt, j._last_dt, rtol=1e-2 if case == "float32" else 1e-5)
    np.testing.assert_array_equal(solve("auto", **CASES[case]).ys, c.ys)  # "auto" (the default) picks it


# Direct in the default run; Auto (which picks Direct here) and Backsolve with `-m slow`
@pytest.mark.parametrize("adjoint", [pytest.param(A.Auto(), marks=pytest.mark.slow), A.Direct(),
                                     pytest.param(A.Backsolve(), marks=pytest.mark.slow)], ids=repr)
def test_gradients_go_through_the_adjoint_unchanged(adjoint):
    def loss(p, backend):
        return jnp.sum(solve(backend, args=p, saveat=TS, adjoint=adjoint).ys ** 2)

    value_c, grad_c = jax.value_and_grad(loss)(P, "c")
    value_j, grad_j = jax.value_and_grad(loss)(P, "jax")
    np.testing.assert_array_equal(grad_c, grad_j)
    np.testing.assert_allclose(value_c, value_j, rtol=1e-12)


def test_forward_mode_and_vmap_compose_with_the_kernel():
    tangent_c = jax.jvp(lambda p: solve("c", args=p, adjoint=A.Forward()).ys, (P,), (jnp.ones(4),))[1]
    tangent_j = jax.jvp(lambda p: solve("jax", args=p, adjoint=A.Forward()).ys, (P,), (jnp.ones(4),))[1]
    np.testing.assert_array_equal(tangent_c, tangent_j)
    y0s = jnp.array([[1.0, 1.0], [2.0, 0.5], [0.5, 3.0]])
    batched = jax.vmap(lambda y0: solve("c", y0=y0, saveat=TS).ys)(y0s)
    for y0, ys in zip(y0s, batched):
        np.testing.assert_allclose(ys, solve("jax", y0=y0, saveat=TS).ys, rtol=1e-9)


def test_nested_vmaps_batched_times_and_args_run_in_one_kernel_call():
    # vmap over a non-leading axis, inside another vmap, with t_span and args batched too: the kernel's
    # custom call takes the whole (folded) batch, and each trajectory is the XLA loop's to rounding
    y0s = jnp.stack([jnp.linspace(0.5, 2.0, 3)[:, None] * jnp.ones((3, 2)), 2.0 * jnp.ones((3, 2))], axis=1)
    t1s = jnp.array([4.0, 7.0])

    def final(backend):
        one = lambda y0, t1, p: solve(backend, y0=y0, t_span=(0.0, t1), args=p).ys[-1]  # noqa: E731
        over_t1 = jax.vmap(one, in_axes=(0, 0, None))
        return jax.jit(jax.vmap(over_t1, in_axes=(0, None, 0)))(y0s, t1s, jnp.stack([P, 1.1 * P, 0.9 * P]))

    c, j = final("c"), final("jax")
    assert c.shape == (3, 2, 2)
    np.testing.assert_allclose(c, j, rtol=1e-9)
    text = jax.jit(jax.vmap(lambda y0: solve("c", y0=y0).ys)).lower(y0s[:, 0]).as_text()
    assert text.count("sciml_kernel_") == 1 and "while" not in text   # one call for the batch, no loop of calls


def test_failures_have_the_jax_backends_status_and_message():
    blow_up = dict(f=lambda t, y, a: y ** 2, y0=jnp.array([1.0]), t_span=(0.0, 2.0), args=None, throw=False)
    c, j = solve("c", **blow_up), solve("jax", **blow_up)
    assert int(c.status) == int(j.status) != 0
    assert c.message() == j.message()
    few = dict(max_steps=10, throw=False)
    c, j = solve("c", **few), solve("jax", **few)
    assert int(c.status) == int(j.status) == int(sciml.Status.MAX_STEPS)
    with pytest.raises(sciml.SolveError, match="max_steps"):
        solve("c", max_steps=10)


@pytest.mark.parametrize("call, reason", [
    (dict(saveat="dense"), "saveat=\"dense\""),
    (dict(saveat="steps"), "saveat=\"steps\""),
    (dict(events=[sciml.Event(lambda t, y, a: y[0] - 2.0)]), "events"),
    (dict(solver=S.BDF(linear_solver="gmres")), "gmres"),   # the dense-LU BDF runs in the kernel
    (dict(solver=S.Kvaerno5()), "Kvaerno5"),
    (dict(solver=S.Rosenbrock23()), "Rosenbrock23"),   # RadauIIA5 runs in the kernel since _kernel_radau.py
])
def test_c_backend_names_what_it_does_not_serve(call, reason):
    with pytest.raises(ValueError, match=rf"`backend=\"c\"` does not serve this solve: .*{reason}"):
        solve("c", **call)
    assert int(solve("auto", **call).status) in (0, int(sciml.Status.EVENT))  # "auto" runs them in JAX


@pytest.mark.parametrize("solver, count", [(S.Rodas5P(), 1), (S.BDF(), 2), (S.RadauIIA5(), 4)])
def test_a_field_whose_matrices_would_overflow_the_stack_is_refused_with_their_size(solver, count):
    # 300 states: count x 300 x 300 float64 per lane of an 8-lane block, over the 4 MiB a thread's stack
    # may give them ("auto" then runs the XLA loop; a NumPy field's kernel keeps them off the stack)
    with pytest.raises(ValueError, match=rf"(?s){count} n x n matrices.*n = 300.*backend=\"jax\""):
        sciml.solve(lambda t, y, a: -y, jnp.ones(300), (0.0, 1e-3), solver=solver, backend="c")


def looping_decay(t, y, k):
    """A field with a loop in it, which the C translator does not take."""
    return jax.lax.fori_loop(0, 2, lambda i, v: v - 0.5 * k * y, jnp.zeros_like(y))


def test_auto_uses_jax_where_the_kernel_cannot_translate():
    sol = sciml.solve(looping_decay, jnp.ones(2), (0.0, 1.0), args=2.0, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(sol.ys[-1], np.exp(-2.0) * np.ones(2), rtol=1e-8)
    # a field closing over a value traced by an outer jit cannot become C either
    closed = jax.jit(lambda k: sciml.solve(lambda t, y, a: -k * y, jnp.ones(2), (0.0, 1.0), rtol=1e-10,
                                           atol=1e-10).ys[-1])(2.0)
    np.testing.assert_allclose(closed, np.exp(-2.0) * np.ones(2), rtol=1e-8)


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match=r"`backend` must be \"auto\", \"jax\" or \"c\"; got 'cuda'"):
        solve("cuda")


def test_auto_leaves_matrix_heavy_fields_to_xla():
    """A 64-wide layer written out as C would be thousands of lines for no gain: "auto" keeps XLA."""
    from sciml.kernel._xla import AUTO_MATRIX_WORK, _matrix_work

    w = jnp.ones((64, 64)) / 64
    heavy = jax.make_jaxpr(lambda y: jnp.tanh(w @ y))(jnp.ones(64)).jaxpr
    light = jax.make_jaxpr(lambda y: lotka_volterra(0.0, y, P))(Y0).jaxpr
    assert _matrix_work(heavy) == 64 * 64 > AUTO_MATRIX_WORK >= _matrix_work(light)
    sol = sciml.solve(lambda t, y, a: jnp.tanh(a @ y) - y, jnp.ones(64), (0.0, 1.0), args=w)
    assert int(sol.status) == 0


def test_without_a_compiler_auto_runs_jax_and_c_says_why(monkeypatch, tmp_path):
    from sciml.kernel import _xla as _solve_kernel
    from sciml.kernel import _build as _c_backend

    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("SCIML_CACHE_DIR", str(tmp_path))  # nothing built yet: a build would be needed
    monkeypatch.setattr(_solve_kernel, "_UNAVAILABLE", [])
    _c_backend.compiler.cache_clear()
    try:
        field = lambda t, y, a: -a * y + 0.25  # noqa: E731  (a field no other test has built)
        with pytest.raises(sciml.ensemble.CompilerNotFoundError, match="C compiler"):
            sciml.solve(field, jnp.ones(2), (0.0, 1.0), args=3.0, backend="c")
        sol = sciml.solve(field, jnp.ones(2), (0.0, 1.0), args=3.0, rtol=1e-10, atol=1e-10)
        exact = 0.25 / 3.0 + (1.0 - 0.25 / 3.0) * np.exp(-3.0)
        np.testing.assert_allclose(sol.ys[-1], exact, rtol=1e-8)
        assert _solve_kernel._UNAVAILABLE  # and "auto" stops trying in this process
    finally:
        _c_backend.compiler.cache_clear()
