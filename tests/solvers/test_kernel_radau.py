"""RadauIIA5 in the generated C kernel (`sciml/kernel/_kernel_radau.py`): a NumPy field's
`solve_ivp(method="Radau")`.

Oracle: the XLA loop's RadauIIA5 (tested against scipy in tests/solvers/test_radau.py) with the same NumPy
field as a host call, which the kernel restates step for step: in float64 the same accepted and rejected
steps, Jacobians and factorisations, states and dense output equal to rounding. ``nfev`` on both paths
counts every call of ``fun``; the XLA loop's finite-difference Jacobian makes one call more (it evaluates
``f(t, y)`` again, the kernel takes the loop's ``f0``). In float32 the error estimate's cancellation (``f0 +
E Z / h``) lifts XLA's and C's different rounding to different step sizes, so there the counts agree in
size and the states to the tolerance. Also: scipy's Radau at rtol 1e-12, ``backend="jax"`` for a translated
field in ``backend="c"``, and an ensemble's lanes against one-trajectory solves.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp as scipy_solve_ivp

import sciml
import sciml._callback_field as callback_field
from sciml import solvers as S
from tests.solvers.stiff_problems import PROBLEMS, relative_error
from tests.solvers.test_kernel_bdf import case


@functools.lru_cache(maxsize=None)
def solved(name, dtype, xla):
    """One solve per case (shared by the tests): the kernel, or the XLA loop with the field as a host call
    (the kernel path switched off)."""
    fun, kw = case(name, dtype)
    saved = callback_field.solve_python_field
    if xla:
        callback_field.solve_python_field = lambda *a, **k: None
    try:
        return sciml.solve_ivp(fun, method="Radau", dense_output=True, **kw)
    finally:
        callback_field.solve_python_field = saved


# ROBER in float32 at rtol 1e-4 runs into max_steps on both paths (about 42000 accepted steps each)
CASES = [("rober", np.float64), ("vdp", np.float64), ("heat", np.float64), ("vdp", np.float32),
         ("heat", np.float32)]


@pytest.mark.parametrize("name, dtype", CASES, ids=[f"{n}-{np.dtype(d).name}" for n, d in CASES])
def test_the_kernel_takes_the_xla_loops_steps(name, dtype):
    kernel, xla = solved(name, dtype, False), solved(name, dtype, True)
    assert kernel.success and xla.success
    assert kernel.y.dtype == xla.y.dtype == dtype and kernel.t.dtype == xla.t.dtype
    floor = PROBLEMS[name].floor if name in PROBLEMS else 1e-3
    if dtype == np.float32:
        assert abs(len(kernel.t) - len(xla.t)) <= 0.2 * len(xla.t), (len(kernel.t), len(xla.t))
        gap = np.abs(kernel.y[:, -1] - xla.y[:, -1]) / (np.abs(xla.y[:, -1]) + floor)
        assert gap.max() <= 10 * 1e-4, gap.max()
        return
    # every step is recorded: the same accepted steps, Jacobians, factorisations; one call less per Jacobian
    assert len(kernel.t) == len(xla.t), (len(kernel.t), len(xla.t))
    assert kernel.njev == xla.njev and kernel.nlu == xla.nlu, (kernel.njev, xla.njev, kernel.nlu, xla.nlu)
    assert abs(kernel.nfev - (xla.nfev - xla.njev)) <= 3, (kernel.nfev, xla.nfev, xla.njev)
    np.testing.assert_allclose(kernel.t, xla.t, rtol=1e-6)
    scale = np.abs(xla.y) + (floor[:, None] if np.ndim(floor) else floor)
    gap = np.abs(kernel.y - xla.y) / scale
    assert gap.max() <= 1e-7, gap.max()
    # dense output between steps: the same collocation polynomials
    mid = 0.5 * (kernel.t[1:] + kernel.t[:-1])
    np.testing.assert_allclose(kernel.sol(mid), xla.sol(mid), rtol=1e-7, atol=1e-7 * np.max(np.abs(xla.y)))


def test_rober_against_scipys_radau_at_tight_tolerance():
    p = PROBLEMS["rober"]
    fun, kw = case("rober", np.float64)
    ours = sciml.solve_ivp(fun, method="Radau", **dict(kw, rtol=1e-9, atol=1e-9 * p.floor))
    peer = scipy_solve_ivp(fun, method="Radau", **dict(kw, rtol=1e-12, atol=1e-12 * p.floor))
    assert ours.success and peer.success
    err = relative_error(ours.y[:, -1], peer.y[:, -1], p.floor)
    assert err <= 100 * 1e-9, err


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_a_translated_field_in_the_c_backend_equals_the_xla_loop(dtype):
    p = PROBLEMS["vdp"]
    rtol = 1e-6 if dtype == np.float64 else 1e-4
    ts = np.array([0.0, 1.0, 100.0, 300.0], dtype)
    sols = [sciml.solve(p.f, jnp.asarray(p.y0, dtype), (0.0, 300.0), args=jnp.asarray(p.args, dtype),
                        solver=S.RadauIIA5(), saveat=ts, rtol=rtol, atol=rtol * p.floor.astype(dtype), backend=b)
            for b in ("jax", "c")]
    assert sols[1].ys.dtype == dtype
    for key in ("naccept", "nreject", "njev", "nlu"):
        assert abs(int(sols[1].stats[key]) - int(sols[0].stats[key])) <= (0 if dtype == np.float64 else 3), key
    assert abs(int(sols[1].stats["nfev"]) - int(sols[0].stats["nfev"])) <= 0.05 * int(sols[0].stats["nfev"])
    gap = np.abs(np.asarray(sols[1].ys, np.float64) - sols[0].ys) / (np.abs(sols[0].ys) + p.floor)
    assert gap.max() <= (1e-7 if dtype == np.float64 else 10 * rtol), gap.max()


def test_an_ensembles_lanes_equal_one_trajectory_solves():
    """Nine ROBER trajectories (a block of 8 lanes and one more) with different rates: each lane takes its
    own steps, Jacobians and factorisations, as the same trajectory solved alone."""
    p = PROBLEMS["rober"]
    ks = np.asarray(p.args)[None] * np.linspace(0.5, 2.0, 9)[:, None]
    y0s = np.tile(p.y0, (9, 1))
    common = dict(solver=S.RadauIIA5(), saveat=np.array([1.0, 1e3]), rtol=1e-6, atol=1e-6 * p.floor, backend="c")
    many = sciml.solve_ensemble(p.f, jnp.asarray(y0s), (0.0, 1e3), args=jnp.asarray(ks), **common)
    for i in (0, 4, 8):
        one = sciml.solve(p.f, jnp.asarray(y0s[i]), (0.0, 1e3), args=jnp.asarray(ks[i]), **common)
        for key in ("naccept", "nreject", "njev", "nlu", "nfev"):
            assert int(many.stats[key][i]) == int(one.stats[key]), key
        np.testing.assert_allclose(many.ys[i], one.ys, rtol=1e-12, atol=1e-20)


def test_a_mass_matrix_is_named():
    from sciml.kernel import solver_unserved
    from sciml.kernel._launch import kernel_method

    solver = S.RadauIIA5(mass_matrix=object())
    assert "mass matrix" in solver_unserved(solver)
    with pytest.raises(ValueError, match="(?s)mass matrix.*backend=\"jax\""):
        kernel_method(solver)


