"""Under ``vmap`` the step loop runs while any trajectory is active and leaves its record buffers
unselected (``sciml/solvers/_lockstep.py``): every trajectory of a batch must still get exactly what it
gets alone, whether it finishes first, last, or fails."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sciml
from sciml import adjoints as A

# Decay rates spread so that trajectories need very different numbers of steps; the last one runs out of
# steps (MAX_STEPS) while the others finish early and keep running as finished lanes.
RATES = jnp.array([0.5, 2.0, 4.0, 4000.0])
MAX_STEPS = 60


def field(t, y, k):
    return -k * y + jnp.sin(t)


def solve(k, saveat):
    return sciml.solve(field, jnp.array([1.0, 2.0]), (0.0, 2.0), args=k, saveat=saveat, rtol=1e-6, atol=1e-8,
                       max_steps=MAX_STEPS, throw=False, adjoint=A.Direct())


@pytest.mark.parametrize("saveat", ["steps", "dense"])
def test_each_lane_of_a_batch_records_what_it_records_alone(saveat):
    batched = jax.jit(jax.vmap(lambda k: solve(k, saveat)))(RATES)
    assert list(np.asarray(batched.status) != 0) == [False, False, False, True]
    for i, k in enumerate(RATES):
        alone = solve(k, saveat)
        assert int(batched.status[i]) == int(alone.status)
        np.testing.assert_array_equal(np.asarray(batched.stats["naccept"][i]), np.asarray(alone.stats["naccept"]))
        if saveat == "steps":
            # Under vmap the record keeps its padded length: inf times and NaN states past the end.
            steps = alone.ts.shape[0]
            np.testing.assert_allclose(batched.ts[i, :steps], alone.ts, rtol=1e-14)
            np.testing.assert_allclose(batched.ys[i, :steps], alone.ys, rtol=1e-12)
            assert np.all(np.isinf(batched.ts[i, steps:])) and np.all(np.isnan(batched.ys[i, steps:]))
        elif int(alone.status) == 0:
            # Dense output inside the span uses every recorded step polynomial.
            t = jnp.linspace(0.0, 2.0, 33)
            one = jax.tree_util.tree_map(lambda x: x[i], batched)
            np.testing.assert_allclose(one.evaluate(t), alone.evaluate(t), rtol=1e-12, atol=1e-14)


def test_batched_direct_gradient_equals_the_per_trajectory_gradients():
    ts = jnp.linspace(0.2, 2.0, 7)

    def loss(k):
        return jnp.sum(solve(k, ts).ys ** 2)

    rates = RATES[:3]  # the failed lane's gradient is NaN-free but meaningless
    batched = jax.jit(jax.vmap(jax.grad(loss)))(rates)
    alone = np.array([jax.grad(loss)(k) for k in rates])
    np.testing.assert_allclose(batched, alone, rtol=1e-12)
    # the oracle: central finite differences of the loss
    h = 1e-6
    fd = np.array([(loss(k + h) - loss(k - h)) / (2 * h) for k in rates])
    np.testing.assert_allclose(batched, fd, rtol=1e-5)
