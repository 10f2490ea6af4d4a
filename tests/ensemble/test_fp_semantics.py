"""The C kernels compute a vector field's operations as written, in IEEE arithmetic, on every path.

The fields below are chosen so that a shortcut changes the bits: a float64 value rounded to float32
and back, float32 arithmetic inside a float64 state, products added to other terms (an FMA would keep
the unrounded product), truncating and flooring integer casts, and divisions. They are solved with fixed
steps (RK4 with ``dt0``, and Tsit5 with ``first_step = max_step = dt`` at tolerances it meets on every
step, so every path takes the same 20 steps) through each kernel path: `sciml.solve(backend="c")` (the
single-trajectory kernel as an XLA custom call), `sciml.solve_ensemble(backend="c")` (the SIMD-block
kernel through ctypes) and `sciml.solve_ivp(backend="c")` (the kernel run from the host).

Oracles:

- a NumPy Runge-Kutta loop that sums the stages in the order of `sciml.solvers._explicit_rk._combine`.
  NumPy evaluates every operation as written (no contraction, no reassociation), so it is the
  reference for "IEEE-exact C of the same operations": every kernel path must match it bit for bit;
- the XLA loop (``backend="jax"``), in a process whose XLA may not use FMA instructions. XLA's CPU
  compiler contracts ``a * b + c`` into an FMA wherever the CPU has one (it does so even without fast
  math), so on such a CPU the XLA loop and the kernels differ by rounding; with that contraction off,
  the XLA loop matches the same NumPy oracle bit for bit. Two XLA rewrites remain that IEEE code does
  not make and that the kernels do not copy: a division by a broadcast scalar becomes a multiplication
  by its reciprocal (the ``division`` field is therefore left out of the XLA comparison), and XLA's
  ``pow`` is its own approximation, not the C library's, so adaptive solves whose step-size factors
  are not clipped (the controller takes ``err ** (-1/k)``) agree in their steps and to rounding, not to
  the bit.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

import sciml
import sciml.solvers as S

F32, F64 = np.float32, np.float64


def narrowing(y, a, xp):
    """A float64 value rounded to float32 and widened again (GCC 12 dropped this in vectorised code)."""
    return (-y * a[0]).astype(F32).astype(F64)


def contraction(y, a, xp):
    """Products added to other terms, where an FMA would keep the unrounded product."""
    return (y * y[::-1] + a[1]) * a[2] - y * a[3]


def float32_inside(y, a, xp):
    """Arithmetic in float32 inside a float64 state."""
    z = y.astype(F32)
    return (z * z * F32(0.3) + z * a[:3].astype(F32) - F32(1.7)).astype(F64) * 0.1


def integer_casts(y, a, xp):
    """Truncation toward zero, flooring and a floored modulo in integers."""
    k = (y * 1000.0).astype(np.int32)
    m = xp.floor(y * 37.0).astype(np.int64)
    return -(k.astype(F64) * 1e-3 + (m % 5).astype(F64) * 0.01)


def division(y, a, xp):
    """Divisions by a constant and by an argument."""
    return -y / 3.0 + y[0] / a[1]


FIELDS = {f.__name__: f for f in (narrowing, contraction, float32_inside, integer_casts, division)}
#: the XLA loop rewrites a division by a scalar as a multiplication by its reciprocal
XLA_EXACT = [name for name in FIELDS if name != "division"]
Y0 = np.array([0.7, -0.3, 1.3])
ARGS = np.array([1.1, 0.7, -0.45, 2.0])
DT, T1, STEPS = 0.125, 2.5, 20            # binary fractions: t lands on T1 after exactly 20 steps
LOOSE = dict(rtol=1e-2, atol=1e-2)        # every Tsit5 step of DT is accepted


def _jax_field(name):
    field = FIELDS[name]
    return lambda t, y, a: field(y, a, jnp)


def _ivp_field(name):
    field = FIELDS[name]
    return lambda t, y, *a: field(y, jnp.stack(a), jnp)


@functools.lru_cache(maxsize=None)
def numpy_rk(name: str, method: str) -> np.ndarray:
    """The state at T1 after STEPS fixed steps of ``method`` ("RK4" or "Tsit5"), in NumPy."""
    tab = getattr(S, method)().tableau
    f = functools.partial(FIELDS[name], a=ARGS, xp=np)

    def combine(y, weights, ks):  # y + h * sum_i w_i k_i, left to right, zero weights skipped
        terms = [float(w) * k for w, k in zip(weights, ks) if float(w) != 0.0]
        acc = terms[0]
        for term in terms[1:]:
            acc = acc + term
        return y + DT * acc

    y, f0 = Y0.copy(), f(Y0)
    for _ in range(STEPS):
        ks = [f0]
        for i in range(1, len(tab.c)):
            ks.append(f(combine(y, tab.a[i], ks)))
        y = combine(y, tab.a[-1], ks[:-1]) if tab.fsal else combine(y, tab.b, ks)
        f0 = ks[-1] if tab.fsal else f(y)
    return y


def solve_rk4(name, backend):
    sol = sciml.solve(_jax_field(name), Y0, (0.0, T1), args=ARGS, solver=S.RK4(), dt0=DT, adaptive=False,
                      backend=backend)
    return np.asarray(sol.ys[-1])


def solve_tsit5(name, backend):
    sol = sciml.solve(_jax_field(name), Y0, (0.0, T1), args=ARGS, solver=S.Tsit5(), dt0=DT, max_step=DT,
                      backend=backend, **LOOSE)
    assert int(sol.stats["naccept"]) == STEPS and int(sol.stats["nreject"]) == 0
    return np.asarray(sol.ys[-1])


def ensemble_rk4(name, backend):
    ens = sciml.solve_ensemble(_jax_field(name), Y0[None], (0.0, T1), args=ARGS, args_axes=None,
                               solver=S.RK4(), dt0=DT, adaptive=False, backend=backend)
    return np.asarray(ens.y_final[0])


def ivp_tsit5(name, backend):
    res = sciml.solve_ivp(_ivp_field(name), (0.0, T1), Y0, method="Tsit5", t_eval=[T1], args=tuple(ARGS),
                          first_step=DT, max_step=DT, backend=backend, **LOOSE)
    assert res.success and res.nfev == 6 * STEPS + 1
    return res.y[:, -1]


#: (path, method of the NumPy oracle)
PATHS = {solve_rk4: "RK4", solve_tsit5: "Tsit5", ensemble_rk4: "RK4", ivp_tsit5: "Tsit5"}


@pytest.mark.parametrize("name", list(FIELDS))
@pytest.mark.parametrize("path", list(PATHS), ids=lambda p: p.__name__)
def test_every_kernel_path_computes_the_field_as_written(path, name):
    np.testing.assert_array_equal(path(name, "c"), numpy_rk(name, PATHS[path]))


def xla_results(out: str) -> None:
    """Run by the test below in a process whose XLA does not contract into FMAs: the XLA loop's answers."""
    np.savez(out, **{f"{path.__name__}-{name}": path(name, "jax") for path in PATHS for name in XLA_EXACT})


def test_the_xla_loop_without_fma_contraction_matches_the_kernels_bit_for_bit(tmp_path):
    out = tmp_path / "xla.npz"
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " --xla_cpu_max_isa=AVX").strip())
    run = subprocess.run([sys.executable, "-c", "import sys; from tests.ensemble.test_fp_semantics import "
                          "xla_results; xla_results(sys.argv[1])", str(out)],
                         cwd=root, env=env, capture_output=True, text=True, timeout=600)
    if run.returncode != 0 and "xla_cpu_max_isa" in run.stderr:
        pytest.skip("this XLA has no `--xla_cpu_max_isa` flag to keep it from contracting into FMAs")
    assert run.returncode == 0, run.stderr[-3000:]
    xla = np.load(out)
    for path, method in PATHS.items():
        for name in XLA_EXACT:
            np.testing.assert_array_equal(xla[f"{path.__name__}-{name}"], numpy_rk(name, method),
                                          err_msg=f"{path.__name__}, {name}")
