"""`jax.grad` through layers matches central finite differences in float64 (STYLE: gradients have
an oracle). The loss is differentiated as a function of the flat parameter vector, so the check covers
`L.flatten` too."""

import jax
import jax.numpy as jnp
import numpy as np

from sciml import layers as L

from .layer_cases import PreNormBlock

KEY = jax.random.key(0)
CHAIN = L.Chain(L.Dense(2, 5, act="tanh"), L.SkipConnection(L.Dense(5, 5, act="gelu")), L.LayerNorm(5),
                L.Dense(5, 1, act="softplus"))
BLOCK = PreNormBlock(4)


def flat_loss(model, x, target):
    params, _ = model.init(KEY, jnp.float64)
    vector, unflatten = L.flatten(params)
    loss = jax.jit(lambda v: jnp.mean((model(unflatten(v), x) - target) ** 2))
    return vector, loss


def central_difference(loss, v, direction, h=1e-6):
    return (loss(v + h * direction) - loss(v - h * direction)) / (2 * h)


def test_chain_gradient_matches_finite_differences_in_every_coordinate():
    x = jax.random.normal(jax.random.key(1), (7, 2), jnp.float64)
    vector, loss = flat_loss(CHAIN, x, jnp.sin(x[:, :1]))
    grad = jax.grad(loss)(vector)
    assert grad.dtype == jnp.float64
    fd = np.array([central_difference(loss, vector, e) for e in np.eye(vector.size)])
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9)


def test_compact_block_gradient_matches_finite_differences_along_random_directions():
    x = jax.random.normal(jax.random.key(2), (2, 3, 4), jnp.float64)
    vector, loss = flat_loss(BLOCK, x, jnp.cos(x))
    grad = jax.grad(loss)(vector)
    directions = jax.random.normal(jax.random.key(3), (6, vector.size), jnp.float64)
    for d in directions:
        np.testing.assert_allclose(grad @ d, central_difference(loss, vector, d), rtol=1e-6, atol=1e-10)
