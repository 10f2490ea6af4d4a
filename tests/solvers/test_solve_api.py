"""`sciml.solve` as the contract describes it: pytrees, saveat modes, jit/vmap/grad, caching."""

import jax
import jax.numpy as jnp
import numpy as np

import sciml
from sciml import layers as L
from sciml import solvers as S


def oscillator(t, y, w):
    return {"x": y["v"], "v": -(w ** 2) * y["x"]}


Y0 = {"x": jnp.array([1.0, 0.5]), "v": jnp.array([0.0, 0.0])}


def test_pytree_state_and_pytree_tolerances():
    ts = jnp.linspace(0.0, 3.0, 7)
    sol = sciml.solve(oscillator, Y0, (0.0, 3.0), args=2.0, saveat=ts,
                      rtol={"x": 1e-10, "v": 1e-10}, atol={"x": 1e-10, "v": 1e-10})
    assert sol.ys["x"].shape == (7, 2) and sol.ys["v"].shape == (7, 2)
    np.testing.assert_allclose(np.asarray(sol.ys["x"]), np.cos(2 * np.asarray(ts))[:, None] * [1.0, 0.5],
                               atol=1e-8)
    np.testing.assert_allclose(np.asarray(sol.y_final["v"]), -2 * np.sin(6.0) * np.array([1.0, 0.5]), atol=1e-8)


def test_saveat_none_gives_the_final_state_with_a_time_axis():
    sol = sciml.solve(lambda t, y, a: -y, jnp.array([1.0, 2.0]), (0.0, 1.0), rtol=1e-10, atol=1e-10)
    assert sol.ts.shape == (1,) and sol.ys.shape == (1, 2)
    np.testing.assert_allclose(np.asarray(sol.ys[0]), np.exp(-1.0) * np.array([1.0, 2.0]), rtol=1e-9)


def test_saveat_steps_outside_jit_is_trimmed_and_inside_jit_is_padded():
    f = lambda t, y, a: -y  # noqa: E731
    sol = sciml.solve(f, jnp.array([1.0]), (0.0, 2.0), saveat="steps", max_steps=64)
    n = int(sol.stats["naccept"])
    assert sol.ts.shape == (n + 1,) and sol.ts[0] == 0.0 and sol.ts[-1] == 2.0
    assert np.all(np.diff(np.asarray(sol.ts)) > 0)
    np.testing.assert_allclose(np.asarray(sol.ys[:, 0]), np.exp(-np.asarray(sol.ts)), rtol=1e-5)
    padded = jax.jit(lambda y0: sciml.solve(f, y0, (0.0, 2.0), saveat="steps", max_steps=64))(jnp.array([1.0]))
    assert padded.ts.shape == (65,)
    np.testing.assert_array_equal(np.asarray(padded.ts[: n + 1]), np.asarray(sol.ts))
    assert np.all(np.isinf(np.asarray(padded.ts[n + 1:]))) and np.all(np.isnan(np.asarray(padded.ys[n + 1:])))


def test_second_call_with_the_same_shapes_does_not_retrace():
    traces = []

    def f(t, y, k):
        traces.append(1)
        return -k * y

    for k, y0 in [(1.0, [1.0, 2.0]), (2.0, [3.0, 4.0]), (0.5, [0.1, 0.2])]:
        sciml.solve(f, jnp.array(y0), (0.0, 1.0), args=jnp.asarray(k))
    first = len(traces)
    sciml.solve(f, jnp.array([5.0, 6.0]), (0.0, 2.0), args=jnp.asarray(3.0))
    assert len(traces) == first and first > 0


def test_vmap_keeps_per_trajectory_step_sizes():
    ks = jnp.array([0.5, 5.0, 50.0])
    solve = jax.vmap(lambda k: sciml.solve(lambda t, y, k: -k * y, jnp.array([1.0]), (0.0, 1.0), args=k,
                                           rtol=1e-8, atol=1e-8))
    sol = solve(ks)
    steps = np.asarray(sol.stats["naccept"])
    assert steps[0] < steps[1] < steps[2]
    np.testing.assert_allclose(np.asarray(sol.ys[:, -1, 0]), np.exp(-np.asarray(ks)), rtol=1e-6, atol=1e-7)


def test_jit_vmap_grad_compose_and_match_finite_differences():
    def loss(p, y0):
        sol = sciml.solve(oscillator, y0, (0.0, 2.0), args=p, saveat=jnp.array([0.5, 1.0, 2.0]),
                          rtol=1e-10, atol=1e-10)
        return jnp.sum(sol.ys["x"] ** 2) + jnp.sum(sol.ys["v"])

    g = jax.jit(jax.grad(loss, argnums=(0, 1)))(1.3, Y0)
    eps = 1e-6
    fd = (loss(1.3 + eps, Y0) - loss(1.3 - eps, Y0)) / (2 * eps)
    np.testing.assert_allclose(float(g[0]), float(fd), rtol=1e-6)
    batched = jax.vmap(jax.grad(loss), in_axes=(0, None))(jnp.array([1.3, 0.7]), Y0)
    np.testing.assert_allclose(float(batched[0]), float(g[0]), rtol=1e-10)


def test_gradient_with_respect_to_the_end_time():
    def final(t1):
        return sciml.solve(lambda t, y, a: -y, jnp.array([1.0]), (0.0, t1), rtol=1e-10, atol=1e-10).ys[-1, 0]

    np.testing.assert_allclose(float(jax.grad(final)(1.5)), -np.exp(-1.5), rtol=1e-8)


def test_vector_field_may_close_over_traced_values():
    def loss(w):
        return sciml.solve(lambda t, y, a: -w * y, jnp.array([1.0]), (0.0, 1.0), rtol=1e-10,
                           atol=1e-10).ys[-1, 0]

    np.testing.assert_allclose(float(jax.grad(loss)(2.0)), -np.exp(-2.0), rtol=1e-8)


def test_args_may_hold_layers_and_other_static_objects():
    model = L.MLP(2, 2, width=8, depth=1)
    params, _ = model.init(jax.random.PRNGKey(0), dtype=jnp.float64)
    sol = sciml.solve(lambda t, y, a: a[0](a[1], y), jnp.array([0.1, -0.2]), (0.0, 1.0), args=(model, params))
    assert sol.ys.shape == (1, 2) and bool(jnp.all(jnp.isfinite(sol.ys)))


def test_fixed_steps_and_max_step():
    fixed = sciml.solve(lambda t, y, a: -y, jnp.array([1.0]), (0.0, 1.0), solver=S.RK4(),
                        adaptive=False, dt0=0.1, saveat="steps")
    np.testing.assert_allclose(np.asarray(fixed.ts), np.linspace(0.0, 1.0, 11), atol=1e-12)
    capped = sciml.solve(lambda t, y, a: -y, jnp.array([1.0]), (0.0, 1.0), max_step=0.05, saveat="steps")
    assert np.max(np.diff(np.asarray(capped.ts))) <= 0.05 + 1e-12


def test_solver_registry_lists_every_method():
    names = {m.__name__ for m in S.ALL}
    assert {"Euler", "Midpoint", "Heun", "RK4", "Bosh3", "Tsit5", "Dopri5", "Dopri8", "Vern7"} <= names
