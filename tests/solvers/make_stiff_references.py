"""Compute the final-state references of the stiff test set (``stiff_references.json``).

Run once (it takes a few minutes): ``python tests/solvers/make_stiff_references.py``.

Each reference is scipy's ``Radau`` (Hairer & Wanner's RADAU5, order 5) at ``rtol=1e-12`` and
``atol=1e-12 * floor`` (the problem's component floor, so that tiny components such as ROBER's y2 are
resolved relatively too), with the exact Jacobian by forward-mode autodiff. An independent check
solution, scipy's ``LSODA`` at ``rtol=1e-12``, gives the reference's own error estimate in the tests'
norm (``stiff_problems.relative_error``); it is stored next to the value and must stay far below the
tightest tolerance the tests use (1e-8).
"""

from __future__ import annotations

import json
import pathlib
import sys

import jax
import numpy as np
import scipy
from scipy.integrate import solve_ivp

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
jax.config.update("jax_enable_x64", True)

from tests.solvers.stiff_problems import PROBLEMS, REFERENCE_FILE, relative_error  # noqa: E402

RTOL = 1e-12


def _solve(problem, method: str) -> np.ndarray:
    f = lambda t, y: problem.f(t, y, problem.args, xp=np)  # noqa: E731
    jac = jax.jit(jax.jacfwd(lambda y: problem.f(0.0, y, problem.args)))
    res = solve_ivp(f, (0.0, problem.t1), problem.y0, method=method, rtol=RTOL, atol=RTOL * problem.floor,
                    jac=lambda t, y: np.asarray(jac(y)))
    if not res.success:
        raise RuntimeError(f"{problem.name}: {method} failed: {res.message}")
    return res.y[:, -1]


def main() -> None:
    out = {"how": (f"scipy {scipy.__version__} solve_ivp(method='Radau', rtol={RTOL}, atol={RTOL} * floor, "
                   f"exact Jacobian); check: LSODA at the same tolerances; 'check_error' is their difference "
                   f"in the tests' norm max |y - ref| / (|ref| + floor)"),
           "problems": {}}
    for name, problem in PROBLEMS.items():
        ref, check = _solve(problem, "Radau"), _solve(problem, "LSODA")
        err = relative_error(check, ref, problem.floor)
        print(f"{name:6s} check_error={err:.2e}")
        out["problems"][name] = {"t1": problem.t1, "y_final": ref.tolist(), "check_error": err}
    REFERENCE_FILE.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
