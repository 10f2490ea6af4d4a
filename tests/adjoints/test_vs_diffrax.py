"""Our gradients agree with diffrax's (RecursiveCheckpointAdjoint: backprop through its solver) on the
same problems, solved tightly so both approximate the exact gradient."""

import functools

import jax
import jax.numpy as jnp
import pytest

from sciml import adjoints as A
from tests.adjoints.problems import GRAD, LV_THETA, LV_WEIGHTS, MLP, cast, lotka_volterra, node_theta, rel_error

diffrax = pytest.importorskip("diffrax")


def _diffrax_lv(theta, tol):
    ts = theta["t1"] * jnp.linspace(0.0, 1.0, 25)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(lambda t, y, p: lotka_volterra(t, y, p)), diffrax.Tsit5(), 0.0, theta["t1"], None,
        theta["y0"], args=theta["p"], saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(rtol=tol, atol=tol), max_steps=4096,
        adjoint=diffrax.RecursiveCheckpointAdjoint())
    return jnp.sum(LV_WEIGHTS * sol.ys) + 0.5 * jnp.sum(sol.ys ** 2) / 25


def _diffrax_node(theta, tol):
    ts = jnp.linspace(0.0, 1.0, 20)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(lambda t, y, p: MLP(p, y)), diffrax.Tsit5(), 0.0, 1.0, None, theta["y0"],
        args=theta["params"], saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(rtol=tol, atol=tol), max_steps=4096,
        adjoint=diffrax.RecursiveCheckpointAdjoint())
    target = jnp.stack([jnp.cos(3 * ts), jnp.sin(3 * ts)], axis=1)
    return jnp.mean((sol.ys - target) ** 2)


_PROBLEMS = {"lotka_volterra": (lambda: LV_THETA, _diffrax_lv), "neural_ode": (node_theta, _diffrax_node)}


@functools.lru_cache(maxsize=None)
def _diffrax_gradient(problem):
    theta, reference = _PROBLEMS[problem]
    return jax.jit(jax.grad(reference))(cast(theta(), jnp.float64), 1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("problem", list(_PROBLEMS))
@pytest.mark.parametrize("method", [A.Direct(), A.Backsolve()], ids=repr)
def test_gradient_agrees_with_diffrax_recursive_checkpoint_adjoint(problem, method):
    ours = GRAD[problem](cast(_PROBLEMS[problem][0](), jnp.float64), jnp.asarray(1e-10), method)
    assert rel_error(ours, _diffrax_gradient(problem)) <= 1e-6
