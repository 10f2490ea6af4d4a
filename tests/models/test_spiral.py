"""The spiral neural ODE (`sciml demo node`) trains to a loss below 1e-3, and only because the gradient
is right: the same schedule driven by a zeroed or a sign-flipped gradient stays far above."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from sciml.demos import spiral

THRESHOLD = 1e-3


@pytest.fixture(scope="module")
def problem():
    return spiral.problem()


@pytest.mark.slow
def test_the_spiral_reaches_a_loss_below_1e_3(problem):
    node, params, loss_fn, data = problem
    result = spiral.train(loss_fn, params, progress=False)
    final = float(loss_fn(result.params))
    assert final < THRESHOLD, f"the spiral neural ODE only reached a loss of {final:.3e}"
    assert result.losses[0] > 1.0          # it started far away (the initial loss is about 4)


def _with_gradient_scaled(loss_fn, scale):
    """``loss_fn`` whose gradient is multiplied by ``scale`` (0: no gradient, -1: the wrong sign)."""
    @jax.custom_vjp
    def identity(p):
        return p

    identity.defvjp(lambda p: (p, None), lambda _, ct: (jax.tree_util.tree_map(lambda c: scale * c, ct),))
    return lambda p: loss_fn(identity(p))


@pytest.mark.slow
@pytest.mark.parametrize("scale", [0.0, -1.0], ids=["zeroed", "sign-flipped"])
def test_a_broken_gradient_stays_far_above_the_threshold(problem, scale):
    node, params, loss_fn, data = problem
    broken = _with_gradient_scaled(loss_fn, scale)
    result = spiral.train(broken, params, steps=(spiral.FULL_STEPS[0], 0), progress=False)
    final = float(loss_fn(result.params))
    assert not np.isfinite(final) or final > 100 * THRESHOLD
