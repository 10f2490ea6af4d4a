"""ROS34PW2, the Rosenbrock-W method, and the kernel's Jacobian reuse for NumPy fields.

Oracles: the W-method order conditions of the tableau (a perturbed coefficient fails them; Rodas5P, a
classical Rosenbrock method, does not satisfy them at its order); `backend="jax"` for the translated
kernel (which forms J every step, as the XLA loop does); expm for the NumPy heat equation and the stiff
set's references (scipy Radau at rtol 1e-12) for Van der Pol (mu = 1e3) and ROBER as NumPy fields, whose
kernel keeps its Jacobian across steps. The measured order is in tests/solvers/test_stiff_convergence.py.
"""

from __future__ import annotations

import dataclasses
import functools

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.linalg import expm

import sciml
from sciml import solvers as S
from sciml.kernel import _callback, _kernel_jacobian_reuse
from sciml.solvers._stiff_tableaus import RODAS5P, ROS34PW2
from tests.solvers.stiff_problems import PROBLEMS, reference, relative_error
from tests.test_solve_ivp_callback import HEAT_TS, HEAT_Y0, heat, heat_matrix


def test_the_tableau_is_checked_as_a_w_method():
    m = list(ROS34PW2.m)
    m[1] += 1e-7
    with pytest.raises(ValueError, match="ROS34PW2"):
        dataclasses.replace(ROS34PW2, m=tuple(m))
    with pytest.raises(ValueError, match="W-method"):   # exact-J order 5, as a W-method only 2
        dataclasses.replace(RODAS5P, w_method=True)
    assert ROS34PW2.m[-1] == 1.0 and ROS34PW2.c[-1] == 1.0   # stiffly accurate


def numpy_field(name):
    f = PROBLEMS[name].f
    return lambda t, y, a: np.asarray(f(t, np.asarray(y), np.asarray(a), xp=np))


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_translated_kernel_equals_the_xla_loop(dtype):
    """A jax.numpy field: the kernel forms J every step, so it takes the XLA loop's steps."""
    p = PROBLEMS["rober"]
    ts = np.array([0.0, 1.0, 100.0, 1e4], dtype)
    rtol = 1e-6 if dtype == np.float64 else 1e-4
    sols = [sciml.solve(p.f, jnp.asarray(p.y0, dtype), (0.0, 1e4), args=jnp.asarray(p.args, dtype),
                        solver=S.ROS34PW2(), saveat=ts, rtol=rtol, atol=rtol * p.floor.astype(dtype), backend=b)
            for b in ("jax", "c")]
    assert sols[1].ys.dtype == dtype
    if dtype == np.float64:
        np.testing.assert_allclose(sols[1].ys, sols[0].ys, rtol=1e-10, atol=1e-14)
    else:   # float32 rounding (XLA vs C) moves the steps by one; at the end the two agree to the
        # tolerance asked (between steps, ROBER's fast component on the cubic Hermite does not)
        gap = np.abs(np.asarray(sols[1].ys[-1], np.float64) - sols[0].ys[-1]) / (np.abs(sols[0].ys[-1]) + p.floor)
        assert gap.max() <= 10 * rtol, gap
    for key in ("naccept", "nreject", "njev", "nlu"):
        assert abs(int(sols[1].stats[key]) - int(sols[0].stats[key])) <= (0 if dtype == np.float64 else 2), key
    assert int(sols[1].stats["njev"]) == int(sols[1].stats["naccept"]) + int(sols[1].stats["nreject"])


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_numpy_heat_equation_keeps_its_jacobian(dtype):
    exact = np.stack([expm(heat_matrix() * t) @ HEAT_Y0 for t in HEAT_TS], axis=1)
    rtol, atol = (1e-6, 1e-9) if dtype == np.float64 else (1e-4, 1e-6)
    res = sciml.solve_ivp(heat, (0.0, HEAT_TS[-1]), HEAT_Y0.astype(dtype), method="ROS34PW2", t_eval=HEAT_TS,
                          rtol=rtol, atol=atol)
    assert res.success and res.y.dtype == dtype
    np.testing.assert_allclose(res.y, exact, atol=20 * rtol * np.abs(exact).max())
    # 100 calls a Jacobian: a few Jacobians, not one per step; n = 100 also keeps the factors a while
    attempts = (res.nfev - 101 * res.njev) / 4      # 4 calls a step: stages 2-4 and f(t1, y1)
    assert 1 <= res.njev <= 3 and res.njev <= res.nlu < attempts / 2


@functools.lru_cache(maxsize=None)
def stiff_numpy_solve(name, dtype):
    p = PROBLEMS[name]
    rtol = 1e-6 if dtype == np.float64 else 1e-4
    return sciml.solve_ivp(numpy_field(name), (0.0, p.t1), p.y0.astype(dtype), method=S.ROS34PW2(),
                           args=(np.asarray(p.args, dtype),),
                           t_eval=[p.t1], rtol=rtol, atol=rtol * p.floor), rtol


# ROBER in float32 with a finite-difference Jacobian misses its reference by ~600 rtol with Rodas5P too
# (steps of sqrt(eps) ~ 3e-4 against components of 1e-5): not a case for the W-method's reuse.
@pytest.mark.parametrize("name, dtype", [("vdp", np.float64), ("vdp", np.float32), ("rober", np.float64)])
def test_nonlinear_stiff_numpy_fields_stay_within_tolerance(name, dtype):
    res, rtol = stiff_numpy_solve(name, dtype)
    assert res.success and res.y.dtype == dtype
    assert relative_error(res.y[:, -1], reference(name), PROBLEMS[name].floor) <= 10 * rtol
    assert 0 < res.njev < res.nlu      # reused across steps, each counted once when formed


def test_a_jacobian_every_step_when_it_may_serve_none(monkeypatch):
    """With ``MAX_AGE = 0`` the host kernel forms J (and the factors) every attempt, as Rodas5P does; its
    solution is the same to within the tolerance, and each J costs n + 1 = 3 calls of the field."""
    monkeypatch.setattr(_kernel_jacobian_reuse, "MAX_AGE", 0)
    _callback._host_kernel.cache_clear()
    try:
        every, rtol = stiff_numpy_solve.__wrapped__("vdp", np.float64)
    finally:
        _callback._host_kernel.cache_clear()
    kept, _ = stiff_numpy_solve("vdp", np.float64)
    assert every.njev == every.nlu and kept.njev < every.njev / 3
    np.testing.assert_allclose(every.y[:, -1], kept.y[:, -1], rtol=20 * rtol, atol=20 * rtol * 1e-2)
