"""Every method, run with fixed steps, converges at its theoretical order.

The slope of log(error) against log(dt) over three halvings of dt, on a problem with an exact
solution, must be within 0.2 of the method's order. Step counts keep each method inside its
asymptotic range and above round-off (5th-order methods reach it late; 8th-order ones leave it early).

The stiff methods (``S.STIFF``) are measured on a mildly stiff problem in ``test_stiff_convergence.py``,
where their stability matters; BDF changes its order as it goes, so it has no single order to fit.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sciml
from sciml import solvers as S
from tests.solvers.problems import (ROTATION_Y0, forced_logistic, forced_logistic_exact, rotation,
                                    rotation_exact)

EPS = 0.25
# method: (problem, t1, coarsest number of steps)
CASES = {
    S.Euler: ("rotation", 2.0, 32),
    S.Midpoint: ("rotation", 2.0, 8),
    S.Heun: ("rotation", 2.0, 16),
    S.RK4: ("rotation", 2.0, 16),
    S.Bosh3: ("rotation", 2.0, 8),
    S.Tsit5: ("logistic", 5.0, 16),
    S.Dopri5: ("rotation", 2.0, 16),
    S.Dopri8: ("rotation", 2.0, 2),
    S.Vern7: ("rotation", 2.0, 4),
}
PROBLEMS = {
    "rotation": (rotation, ROTATION_Y0, EPS, lambda t: rotation_exact(t, EPS)),
    "logistic": (forced_logistic, np.array([0.5]), None, forced_logistic_exact),
}


def test_every_explicit_method_has_a_convergence_case():
    assert set(CASES) == set(S.EXPLICIT)


@pytest.mark.parametrize("method", S.EXPLICIT, ids=lambda m: m.__name__)
def test_measured_order_matches_theory(method):
    problem, t1, n0 = CASES[method]
    f, y0, args, exact = PROBLEMS[problem]
    solver = method()

    @jax.jit
    def final_state(dt):
        sol = sciml.solve(f, jnp.asarray(y0), (0.0, t1), args=args, solver=solver, adaptive=False,
                          dt0=dt, max_steps=4096)
        return sol.ys[-1], sol.stats["naccept"]

    steps = [n0 * 2 ** k for k in range(4)]
    errors = []
    for n in steps:
        y, taken = final_state(t1 / n)
        assert int(taken) == n                   # exactly n fixed steps: no sliver step at t1
        errors.append(np.max(np.abs(np.asarray(y) - exact(t1))))
    assert min(errors) > 5e-14, errors           # above round-off, so the slope means something
    slope = np.polyfit(np.log([t1 / n for n in steps]), np.log(errors), 1)[0]
    assert abs(slope - method.order) <= 0.2, (method.__name__, slope, errors)
