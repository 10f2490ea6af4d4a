"""Ensembles shared by the ensemble tests: Lorenz and Lotka-Volterra with per-trajectory parameters,
and a blow-up whose exact solution is known."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from tests.solvers.problems import lorenz, lotka_volterra

N = 6


def lorenz_ensemble(dtype):
    """sigma=10, beta=8/3, rho from 0 to 28 (the DiffEqGPU sweep), y0 near [1, 0, 0]."""
    rho = np.linspace(0.0, 28.0, N)
    params = np.stack([np.full(N, 10.0), rho, np.full(N, 8.0 / 3.0)], axis=1).astype(dtype)
    y0s = (np.array([1.0, 0.0, 0.0]) + 0.1 * np.arange(N)[:, None]).astype(dtype)
    return lorenz, y0s, (0.0, 1.0), params


def lotka_volterra_ensemble(dtype):
    """The classic (1.5, 1, 3, 1) predator-prey system with every parameter varied by up to 20%."""
    rng = np.random.default_rng(0)
    params = (np.array([1.5, 1.0, 3.0, 1.0]) * rng.uniform(0.8, 1.2, size=(N, 4))).astype(dtype)
    y0s = rng.uniform(0.5, 1.5, size=(N, 2)).astype(dtype)
    return lotka_volterra, y0s, (0.0, 5.0), params


PROBLEMS = {"lorenz": lorenz_ensemble, "lotka_volterra": lotka_volterra_ensemble}


def blowup(t, y, k):
    """y' = k y^2: y(t) = y0 / (1 - k y0 t) blows up at t = 1 / (k y0)."""
    return k * y * y


def blowup_exact(t, y0, k):
    return y0 / (1.0 - k * y0 * t)


def tolerances(dtype):
    return (1e-9, 1e-9) if dtype == np.float64 else (1e-5, 1e-5)


def saveat(t_span, dtype):
    return jnp.linspace(t_span[0], t_span[1], 7).astype(dtype)


def assert_warning_free_c(source: str, tmp_path) -> None:
    """``source`` compiles as C99 with every gcc warning an error (the generated kernels must)."""
    import subprocess

    path = tmp_path / "kernel.c"
    path.write_text(source)
    result = subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-Wno-unused-function",
                             "-Wno-unknown-pragmas", "-fsyntax-only", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
