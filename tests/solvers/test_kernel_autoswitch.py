"""AutoSwitch (Tsit5 + Rodas5P) in the generated C kernel (`sciml/kernel/_kernel_autoswitch.py`).

Oracle: the XLA loop's AutoSwitch (tested against exact solutions, stored references and finite-difference
gradients in test_autoswitch.py), which the kernel restates step for step: for a translated field,
``backend="jax"`` against ``backend="c"`` (the XLA custom call) on ROBER, Van der Pol (mu = 1e3) and the
flame model: the same accepted and rejected steps, switches, stiff steps, Jacobians and evaluations,
states equal to rounding. For a NumPy field, ``solve_ivp(method="LSODA")`` runs in the kernel (it reports
fewer calls of ``fun`` than the XLA loop with ``fun`` as a host call, whose power iteration forms a
finite-difference Jacobian of its own) and takes the XLA loop's steps; it agrees with scipy's LSODA to
the tolerance.
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
from tests.solvers.stiff_problems import PROBLEMS
from tests.solvers.test_autoswitch import DELTA, flame, flame_exact

#: (field, y0, t1, args, floor): the floor is the size below which an error counts as absolute
CASES = {
    "rober": (PROBLEMS["rober"].f, PROBLEMS["rober"].y0, 1e5, PROBLEMS["rober"].args, PROBLEMS["rober"].floor),
    "vdp": (PROBLEMS["vdp"].f, PROBLEMS["vdp"].y0, 3000.0, PROBLEMS["vdp"].args, PROBLEMS["vdp"].floor),
    "flame": (flame, np.array([DELTA]), 2 / DELTA, 1.0, np.array([1e-3])),
}
STATS = ("naccept", "nreject", "nfev", "njev", "nlu", "nswitch", "nstiff")


@functools.lru_cache(maxsize=None)
def translated(name, dtype, backend):
    f, y0, t1, args, floor = CASES[name]
    rtol = 1e-6 if dtype == np.float64 else 1e-4
    ts = np.linspace(0.0, t1, 11).astype(dtype)
    return sciml.solve(f, jnp.asarray(y0, dtype), (dtype(0.0), dtype(t1)), args=jnp.asarray(args, dtype),
                       saveat=jnp.asarray(ts), rtol=rtol, atol=rtol * floor.astype(dtype), solver=S.AutoSwitch(),
                       backend=backend, throw=False)


@pytest.mark.parametrize("name", list(CASES))
def test_the_kernel_takes_the_xla_loops_steps(name):
    xla, kernel = translated(name, np.float64, "jax"), translated(name, np.float64, "c")
    assert int(xla.status) == int(kernel.status) == 0
    assert {k: int(xla.stats[k]) for k in STATS} == {k: int(kernel.stats[k]) for k in STATS}
    assert int(kernel.stats["nswitch"]) >= 1 and 0 < int(kernel.stats["nstiff"]) < int(kernel.stats["naccept"])
    floor = CASES[name][4]
    gap = np.abs(np.asarray(kernel.ys) - np.asarray(xla.ys)) / (np.abs(np.asarray(xla.ys)) + floor)
    # XLA's sums, dot products and LU round differently from the kernel's loops; Van der Pol's fast jumps
    # lift that rounding to ~1e-10, the other two stay near 1e-13
    assert gap.max() <= 1e-9, gap.max()


def test_float32_flame():
    xla, kernel = translated("flame", np.float32, "jax"), translated("flame", np.float32, "c")
    assert kernel.ys.dtype == jnp.float32 and kernel.ts.dtype == jnp.float32
    assert int(xla.status) == int(kernel.status) == 0
    assert int(xla.stats["nswitch"]) == int(kernel.stats["nswitch"]) == 1
    # float32: XLA's rounding and C's move a step-size choice by a step here and there (Tsit5 and Rodas5P
    # alone do the same on this problem), so the counts agree in size and the states to the tolerance
    for key in ("naccept", "nreject", "nstiff", "njev"):
        assert abs(int(xla.stats[key]) - int(kernel.stats[key])) <= 2, key
    # the ignition front is steep: a shifted step moves the states saved on it, so the oracle there is the
    # exact solution (both err ~1e-3 at rtol 1e-4), and the burnt state after it
    exact = flame_exact(np.linspace(0.0, 2 / DELTA, 11), DELTA)
    for sol in (xla, kernel):
        assert np.abs(np.asarray(sol.ys[:, 0], np.float64) - exact).max() <= 1e-2
    assert abs(float(kernel.ys[-1, 0]) - float(xla.ys[-1, 0])) <= 1e-4


def numpy_field(name):
    f, _, _, args, _ = CASES[name]
    if name == "flame":
        return lambda t, y: np.asarray(y**2 - y**3)
    return lambda t, y: np.asarray(f(t, y, np.asarray(args), xp=np))


def numpy_case(name, rtol=1e-6):
    _, y0, t1, _, floor = CASES[name]
    return numpy_field(name), dict(t_span=(0.0, t1), y0=y0, rtol=rtol, atol=rtol * floor)


@functools.lru_cache(maxsize=None)
def lsoda(name, xla):
    """``solve_ivp(method="LSODA")`` of the NumPy field (every step recorded, with its dense output): the
    kernel, or the XLA loop with the field as a host call (the kernel path switched off); with the
    kernel path's answer (None: it did not serve the call)."""
    fun, kw = numpy_case(name)
    saved, served = callback_field.solve_python_field, []

    def kernel(*a, **k):
        served.append(saved(*a, **k))
        return served[-1]

    callback_field.solve_python_field = (lambda *a, **k: None) if xla else kernel
    try:
        return sciml.solve_ivp(fun, method="LSODA", dense_output=True, **kw), served
    finally:
        callback_field.solve_python_field = saved


def test_a_numpy_field_runs_in_the_kernel_with_the_xla_loops_steps():
    (kernel, served), (xla, _) = lsoda("flame", False), lsoda("flame", True)
    assert served and served[0] is not None           # the kernel solved it
    assert kernel.success and xla.success
    # the same steps and switches; the NumPy field's Tsit5 steps already differ at ~1e-9 between the two
    # loops (Tsit5 alone does the same), so the states agree far below the tolerance, not to rounding
    assert len(kernel.t) == len(xla.t)
    np.testing.assert_allclose(kernel.t, xla.t, rtol=1e-7)
    assert kernel.njev == xla.njev and kernel.nlu == xla.nlu and 0 < kernel.njev < len(kernel.t)
    assert kernel.nfev < xla.nfev    # no finite-difference Jacobian for the power iteration
    np.testing.assert_allclose(kernel.y, xla.y, rtol=1e-7, atol=1e-10)
    mid = 0.5 * (kernel.t[1:] + kernel.t[:-1])        # each step's polynomial, of the method that took it
    np.testing.assert_allclose(kernel.sol(mid), xla.sol(mid), rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("name", ["rober", "flame"])
def test_a_numpy_field_agrees_with_scipys_lsoda(name):
    fun, kw = numpy_case(name)
    ours, served = lsoda(name, False)
    peer = scipy_solve_ivp(fun, method="LSODA", **kw)
    assert served[0] is not None and ours.success and peer.success
    floor = CASES[name][4]
    gap = np.abs(ours.y[:, -1] - peer.y[:, -1]) / (np.abs(peer.y[:, -1]) + floor)
    assert gap.max() <= 20 * kw["rtol"], gap.max()
    assert len(ours.t) < len(peer.t)    # Rodas5P's long stiff steps against LSODA's BDF


def test_other_pairs_and_ensembles_are_refused_with_the_fix():
    from sciml.kernel import solver_unserved
    from sciml.kernel._launch import kernel_method

    pair = S.AutoSwitch(stiff=S.Rosenbrock23())
    assert "default methods" in solver_unserved(pair)
    assert solver_unserved(S.AutoSwitch()) == ""
    with pytest.raises(ValueError, match=r"(?s)Tsit5.*Rodas5P.*backend=\"jax\""):
        kernel_method(pair)
    with pytest.raises(ValueError, match=r"(?s)one trajectory at a time.*backend=\"jax\""):
        sciml.solve_ensemble(flame, jnp.full((2, 1), 0.1), (0.0, 1.0), args=1.0, args_axes=None,
                             solver=S.AutoSwitch(), backend="c")
