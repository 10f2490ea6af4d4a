"""Work per solve matches the peer: Tsit5 and Dopri5 on Lotka-Volterra use within 10% of diffrax's
function evaluations at the same tolerances (same error norm, Hairer's initial step, PI control)."""

import diffrax
import jax.numpy as jnp
import pytest

import sciml
from sciml import solvers as S
from tests.solvers.problems import LV_P, LV_Y0, lotka_volterra

PAIRS = [(S.Tsit5, diffrax.Tsit5), (S.Dopri5, diffrax.Dopri5)]


def _diffrax_nfev(method, tol):
    sol = diffrax.diffeqsolve(diffrax.ODETerm(lotka_volterra), method(), 0.0, 10.0, None,
                              jnp.asarray(LV_Y0), args=jnp.asarray(LV_P), max_steps=100_000,
                              stepsize_controller=diffrax.PIDController(rtol=tol, atol=tol))
    # FSAL methods with 7 stages: 6 evaluations per step, plus f(t0, y0). No initial-step probe: diffrax
    # 0.7.2's diffeqsolve wraps the term before `_select_initial_step` looks for an ODETerm, so every
    # solve starts at its fallback dt0 (see benchmarks/bench_adjoints.py, "same work").
    return 6 * int(sol.stats["num_steps"]) + 1


@pytest.mark.parametrize("tol", [1e-4, 1e-6, 1e-8])
@pytest.mark.parametrize("ours, theirs", PAIRS, ids=["Tsit5", "Dopri5"])
def test_nfev_within_ten_percent_of_diffrax(ours, theirs, tol):
    sol = sciml.solve(lotka_volterra, jnp.asarray(LV_Y0), (0.0, 10.0), args=jnp.asarray(LV_P),
                      solver=ours(), rtol=tol, atol=tol)
    nfev = int(sol.stats["nfev"])
    assert nfev == 2 + 6 * (int(sol.stats["naccept"]) + int(sol.stats["nreject"]))
    reference = _diffrax_nfev(theirs, tol)
    assert abs(nfev - reference) <= 0.1 * reference, (nfev, reference)
