"""`sciml.losses`: each loss is zero at the true model, equals its definition elsewhere, and trains.

The oracle is the harmonic oscillator ``y'' = -w^2 y``, whose solution ``(cos w t, -w sin w t)`` is known
in closed form; the vector field takes ``w`` as its params.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sciml import losses

TS = np.linspace(0.0, 4.0, 21)
W_TRUE = 1.3


def oscillator(t, y, w):
    return jnp.stack([y[1], -w ** 2 * y[0]])


def exact(ts, w=W_TRUE, y0=(1.0, 0.0)):
    a, b = y0[0], y0[1] / w
    return np.stack([a * np.cos(w * ts) + b * np.sin(w * ts), -a * w * np.sin(w * ts) + b * w * np.cos(w * ts)], axis=1)


DATA = exact(TS)


def test_single_shooting_is_the_mean_squared_error_of_the_solution():
    assert float(losses.single_shooting(oscillator, W_TRUE, TS, DATA, rtol=1e-10, atol=1e-10)) < 1e-16
    expected = np.mean((exact(TS, 1.1) - DATA) ** 2)
    np.testing.assert_allclose(losses.single_shooting(oscillator, 1.1, TS, DATA, rtol=1e-10, atol=1e-10), expected,
                               rtol=1e-7)
    y0 = jnp.asarray([0.8, 0.3])
    np.testing.assert_allclose(losses.single_shooting(oscillator, W_TRUE, TS, DATA, y0=y0, rtol=1e-10, atol=1e-10),
                               np.mean((exact(TS, W_TRUE, (0.8, 0.3)) - DATA) ** 2), rtol=1e-7)


@pytest.mark.parametrize("m, group, starts", [(21, 5, [0, 4, 8, 12, 16]), (21, 6, [0, 5, 10, 15]),
                                              (20, 6, [0, 5, 10, 14]), (5, 5, [0])])
def test_segments_cover_the_record_with_equal_lengths(m, group, starts):
    got = losses.segments(m, group)
    assert got.tolist() == starts
    assert got[-1] + group == m and np.all(np.diff(got) <= group - 1)


STARTS = losses.segments(len(TS), 6)


@jax.jit
@functools.partial(jax.value_and_grad, argnums=(0, 1))
def multiple(w, nodes):
    """Multiple shooting with explicit nodes and its gradient (one compile for every test here)."""
    return losses.multiple_shooting(oscillator, w, TS, DATA, group_size=6, continuity=10.0, nodes=nodes,
                                    rtol=1e-10, atol=1e-10)


def test_multiple_shooting_fit_and_continuity_terms():
    assert float(multiple(W_TRUE, DATA[STARTS])[0]) < 1e-16
    # Wrong frequency, segments start from the data: the fit term is the segment-wise error and the
    # continuity term compares each segment's end with the next segment's start.
    w = 1.2
    pred = [exact(TS[s:s + 6] - TS[s], w, tuple(DATA[s])) for s in STARTS]
    fit = np.mean([(p - DATA[s:s + 6]) ** 2 for p, s in zip(pred, STARTS)])
    jump = np.mean([(p[-1] - DATA[s + 5]) ** 2 for p, s in zip(pred[:-1], STARTS[:-1])])
    np.testing.assert_allclose(multiple(w, DATA[STARTS])[0], fit + 10.0 * jump, rtol=1e-7)


def test_multiple_shooting_with_trainable_nodes_gets_their_gradient():
    nodes = jnp.asarray(DATA[STARTS]) + 0.1
    _, (grad_w, grad_nodes) = multiple(W_TRUE, nodes)
    assert grad_nodes.shape == nodes.shape and np.all(np.abs(grad_nodes) > 0) and grad_w != 0
    # the gradient with respect to the nodes, checked along one direction by central differences
    direction = np.random.default_rng(0).standard_normal(nodes.shape)
    eps = 1e-6
    fd = (multiple(W_TRUE, nodes + eps * direction)[0] - multiple(W_TRUE, nodes - eps * direction)[0]) / (2 * eps)
    np.testing.assert_allclose(np.sum(grad_nodes * direction), fd, rtol=1e-5)
    with pytest.raises(ValueError, match="one initial state per segment"):
        losses.multiple_shooting(oscillator, W_TRUE, TS, DATA, group_size=6, nodes=nodes[:2])


def test_smooth_and_collocation_on_noisy_data():
    rng = np.random.default_rng(0)
    ts = np.linspace(0.0, 4.0, 41)
    noisy = exact(ts) + 0.01 * rng.standard_normal((41, 2))
    t, u, du = losses.smooth(ts, noisy)
    assert t.shape == (164,) and u.shape == du.shape == (164, 2) and du.dtype == np.float64
    inner = slice(10, -10)  # spline derivatives are weakest at the ends
    true_du = np.stack([oscillator(0.0, y, W_TRUE) for y in exact(t)])
    assert np.max(np.abs(du[inner] - true_du[inner])) < 0.1
    # the collocation loss is smallest near the true frequency
    values = {w: float(losses.collocation(oscillator, w, t, u, du)) for w in (1.0, W_TRUE, 1.6)}
    assert values[W_TRUE] < 0.01 < min(values[1.0], values[1.6])


def test_losses_keep_float32():
    data32 = DATA.astype(np.float32)
    value = losses.single_shooting(oscillator, jnp.float32(W_TRUE), TS.astype(np.float32), data32)
    assert value.dtype == jnp.float32
    t, u, du = losses.smooth(TS.astype(np.float32), data32)
    assert u.dtype == du.dtype == np.float32
    assert losses.collocation(oscillator, jnp.float32(W_TRUE), t, u, du).dtype == jnp.float32


def test_bad_data_shapes_are_refused():
    with pytest.raises(ValueError, match="single_shooting"):
        losses.single_shooting(oscillator, W_TRUE, TS, DATA[:-1])
    with pytest.raises(ValueError, match="group_size"):
        losses.segments(21, 1)
    with pytest.raises(ValueError, match="increasing"):
        losses.smooth(TS[::-1], DATA)
