"""Every adjoint gives the right gradient: the acceptance matrix of the adjoint menu.

For each method x {float64, float32} x {Lotka-Volterra with parameters and end time, a neural ODE
with an MLP from `sciml.layers`, a 20-dimensional linear system}:

* float64 gradients agree with central finite differences of tight-tolerance solves (relative error
  <= 1e-5 along random directions), and on the linear system with its closed-form gradient;
* they agree with the Direct gradient (float64 at rtol=atol=1e-10: <= 1e-6 relative; float32 at
  1e-5: <= 1e-3, on the two nonlinear problems), and float32 in gives float32 gradients (computed in float32: no float64 leaks in);
* `vmap(grad(...))` gives, row by row, the unbatched gradients.

The neural-ODE rows of the first two checks are marked `slow` (`python -m pytest -m slow`): 28 compiled
gradients that repeat, on a second nonlinear problem, paths the Lotka-Volterra rows already cover.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sciml import adjoints as A
from tests.adjoints.problems import (GRAD, LOSS, PROBLEMS, cast, flat, gradient, gradients, linear_exact_gradient,
                                    rel_error)

METHODS = [A.Direct(), A.Backsolve(), A.Interpolating(), A.Quadrature(), A.Forward()]
CHECKPOINTED = [A.Direct(checkpoints=4), A.Interpolating(checkpoints=4)]
IDS = lambda m: repr(m)  # noqa: E731


def _directions(theta, count=2, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        leaves, treedef = jax.tree_util.tree_flatten(theta)
        v = [rng.normal(size=np.shape(x)) for x in leaves]
        norm = np.sqrt(sum(np.sum(x * x) for x in v))
        out.append(jax.tree_util.tree_unflatten(treedef, [x / norm for x in v]))
    return out


@functools.lru_cache(maxsize=None)
def _finite_differences(problem, theta_key):
    """Central differences of rtol=atol=1e-12 solves along two random unit directions."""
    theta = _THETAS[theta_key]
    tol, h = jnp.asarray(1e-12), 1e-4
    out = []
    for v in _directions(theta):
        plus = jax.tree_util.tree_map(lambda x, d: x + h * d, theta, v)
        minus = jax.tree_util.tree_map(lambda x, d: x - h * d, theta, v)
        loss = LOSS[problem]
        out.append((v, (float(loss(plus, tol, A.Direct())) - float(loss(minus, tol, A.Direct()))) / (2 * h)))
    return out


_THETAS = {}


def _key(theta):
    key = flat(theta).tobytes()
    _THETAS[key] = theta
    return key


def _slow_if_neural(problem):
    """The neural-ODE rows run with ``-m slow``: CI's default run checks every method on Lotka-Volterra
    (parameters, initial state and end time, batched) and the linear system's closed form; the neural
    ODE's float32 gradients are still checked there to compute nothing in float64 (below)."""
    return pytest.param(problem, marks=pytest.mark.slow) if problem == "neural_ode" else problem


@pytest.mark.parametrize("problem", [_slow_if_neural(p) for p in PROBLEMS])
@pytest.mark.parametrize("method", METHODS + CHECKPOINTED, ids=IDS)
def test_float64_gradient_matches_central_finite_differences(method, problem):
    """(Lotka-Volterra: two problems at once under `vmap(grad(...))`, each checked.)"""
    for theta, g in gradients(problem, method, "float64"):
        for v, fd in _finite_differences(problem, _key(theta)):
            directional = float(np.dot(flat(g), flat(v)))
            assert abs(directional - fd) <= 1e-5 * abs(fd), (directional, fd)


@pytest.mark.parametrize("method", METHODS, ids=IDS)
def test_linear_system_gradient_matches_the_closed_form(method):
    assert rel_error(gradient("linear20", method, "float64"), linear_exact_gradient()) <= 1e-7


# float32 on the two nonlinear problems (checkpoints: on one); the linear system adds no float32 path, and
# every method's float32 gradient is also checked to compute nothing in float64 (below)
_MATRIX = [(m, p, d) for m in METHODS[1:] + CHECKPOINTED for p in PROBLEMS for d in ("float64", "float32")
           if d == "float64" or (p != "linear20" and (m not in CHECKPOINTED or p == "lotka_volterra"))]


@pytest.mark.parametrize("method, problem, dtype",
                         [pytest.param(*row, marks=pytest.mark.slow) if row[1] == "neural_ode" else row
                          for row in _MATRIX], ids=lambda x: repr(x) if isinstance(x, A.AbstractAdjoint) else x)
def test_gradient_matches_direct_and_keeps_the_dtype(method, problem, dtype):
    g = gradient(problem, method, dtype)
    reference = gradient(problem, A.Direct(), dtype)
    assert all(x.dtype == jnp.dtype(dtype) for x in jax.tree_util.tree_leaves(g))
    assert all(x.dtype == jnp.dtype(dtype) for x in jax.tree_util.tree_leaves(reference))
    assert rel_error(g, reference) <= (1e-6 if dtype == "float64" else 1e-3)


def _computed_dtypes(jaxpr, found):
    """Dtypes of every value computed anywhere in ``jaxpr`` (sub-jaxprs of loops, conds, calls too)."""
    for eqn in jaxpr.eqns:
        # Weak-typed scalars are Python constants (e.g. `jnp.where(c, x, 0)`); they never set a precision.
        found.update(str(v.aval.dtype) for v in eqn.outvars
                     if hasattr(v.aval, "dtype") and not getattr(v.aval, "weak_type", False))
        for param in eqn.params.values():
            for sub in param if isinstance(param, (tuple, list)) else (param,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    _computed_dtypes(inner, found)
    return found


@pytest.mark.parametrize("method", METHODS, ids=IDS)
def test_float32_gradients_are_computed_in_float32(method):
    """No float64 value is computed anywhere in the float32 gradient (not just a float32 result)."""
    theta = cast(PROBLEMS["neural_ode"][1](), jnp.float32)
    jaxpr = jax.make_jaxpr(lambda th, tol: GRAD["neural_ode"](th, tol, method))(theta, jnp.float32(1e-5))
    dtypes = _computed_dtypes(jaxpr.jaxpr, set())
    assert "float32" in dtypes and "float64" not in dtypes and "complex128" not in dtypes


@pytest.mark.parametrize("method", METHODS, ids=IDS)
def test_vmap_of_grad_gives_each_problem_its_own_gradient(method):
    """Row by row, the batched gradients are those of the separate problems (Direct, unbatched)."""
    batched = gradients("lotka_volterra", method, "float64")
    for theta, g in batched:
        single = GRAD["lotka_volterra"](theta, jnp.asarray(1e-10), A.Direct())
        assert rel_error(g, single) <= 1e-6
    assert rel_error(batched[0][1], batched[1][1]) > 1e-2  # the two problems differ
