"""The one-step stiff methods converge at their classical order on a mildly stiff problem.

Problem (Prothero-Robinson type, exact solution known): ``y' = A (y - phi(t)) + phi'(t)`` with ``A``
symmetric, eigenvalues -1, -3, -10 (stiffness ratio 10), ``phi(t) = (sin t, cos 2t, exp(-t/2))``, so
``y(t) = phi(t) + expm(A t) (y0 - phi(0))``. On such problems methods of low stage order lose order
while ``h |lambda|`` is large (Hairer & Wanner II, Sec. IV.15); the step ranges below start where the
classical order is already observable: Rodas5P and RadauIIA5 (stage order 3) from ``h |lambda|_max =
1.25``, Kvaerno5 (stage order 2) from 0.4. (On a linear autonomous problem Rodas5P's error constant makes
it look like order 6, which is why the forcing is there.) Fixed steps; the slope of log(error) against log(h) over three halvings
must be within 0.2 of the order. BDF changes its order as it goes: it has no single order to fit.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import sciml
from sciml import solvers as S

T = 2.0
Y0 = np.array([1.0, 0.5, -0.3])
_Q = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
A = _Q @ np.diag([-1.0, -3.0, -10.0]) @ _Q.T
# method: coarsest number of steps
CASES = {S.Rodas5P: 16, S.Kvaerno5: 48, S.Rosenbrock23: 16, S.ROS34PW2: 16, S.RadauIIA5: 8}


def phi(t, xp=jnp):
    return xp.stack([xp.sin(t), xp.cos(2 * t), xp.exp(-t / 2)])


def dphi(t):
    return jnp.stack([jnp.cos(t), -2 * jnp.sin(2 * t), -0.5 * jnp.exp(-t / 2)])


def field(t, y, A):
    return A @ (y - phi(t)) + dphi(t)


def exact(t):
    return phi(t, np) + scipy.linalg.expm(A * t) @ (Y0 - phi(0.0, np))


def test_every_one_step_stiff_method_has_a_case():
    assert set(CASES) == {m for m in S.STIFF if m is not S.BDF}


@pytest.mark.parametrize("method", list(CASES), ids=lambda m: m.__name__)
def test_measured_order_matches_theory(method):
    @jax.jit
    def final_state(dt):
        sol = sciml.solve(field, jnp.asarray(Y0), (0.0, T), args=jnp.asarray(A), solver=method(), adaptive=False,
                          dt0=dt, max_steps=1024)
        return sol.ys[-1], sol.stats["naccept"], sol.status

    steps = [CASES[method] * 2 ** k for k in range(4)]
    errors = []
    for n in steps:
        y, taken, status = final_state(T / n)
        assert int(status) == sciml.Status.SUCCESS and int(taken) == n
        errors.append(np.max(np.abs(np.asarray(y) - exact(T))))
    assert min(errors) > 5e-14, errors
    slope = np.polyfit(np.log([T / n for n in steps]), np.log(errors), 1)[0]
    assert abs(slope - method.order) <= 0.2, (method.__name__, slope, errors)
