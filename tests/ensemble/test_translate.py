"""The jaxpr -> C translator: every supported primitive, evaluated as compiled C against JAX.

All cases are generated into ONE C library (one compiler run), in float64 and float32; each C function
is called on random inputs from the primitive's domain and compared with JAX on the same inputs.
"""

from __future__ import annotations

import ctypes
import functools
import shutil
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from sciml.ensemble import UnsupportedPrimitiveError
from sciml.kernel._build import load_library
from sciml.kernel._ctypes import PRELUDES, literal
from sciml.kernel._translate import c_function, supported_primitives

W = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])


def _cond(x):
    return lax.cond(x[0] > 0.2, lambda v: jnp.sin(v), lambda v: v * 2.0, x)


def _switch(x):
    return lax.switch((x[1] > 0).astype(jnp.int32) + (x[2] > 0).astype(jnp.int32),
                      [lambda v: v, lambda v: -v, lambda v: v * v], x)


#: name -> (function of arrays, input shapes, input domain (lo, hi)); every supported primitive is in
#: at least one jaxpr (checked below)
CASES = {
    "arith": (lambda x, y: (x + y, x - y, x * y, x / y, -x, jnp.square(x), x ** 3, x ** -2, x ** 0), [(3,), (3,)],
              (0.5, 2.0)),
    "pow": (lambda x, y: (x ** y, jnp.power(x, 2.5), lax.rem(x, y), jnp.arctan2(x, y - 1.0),
                          jnp.nextafter(x, y)), [(3,), (3,)], (0.5, 2.0)),
    "exp_log": (lambda x: (jnp.exp(x), jnp.exp2(x), jnp.log(x), jnp.log1p(x), jnp.expm1(x), jnp.sqrt(x),
                           lax.rsqrt(x), jnp.cbrt(x - 1.0)), [(4,)], (0.1, 3.0)),
    "trig": (lambda x: (jnp.sin(x), jnp.cos(x), jnp.tan(x), jnp.arcsin(x), jnp.arccos(x), jnp.arctan(x),
                        jnp.sinh(x), jnp.cosh(x), jnp.tanh(x), jnp.arcsinh(x), jnp.arctanh(x),
                        jnp.arccosh(x + 2.0)), [(4,)], (-0.9, 0.9)),
    "special": (lambda x: (lax.erf(x), lax.erfc(x), lax.lgamma(x + 2.0), jax.nn.sigmoid(x), jnp.abs(x),
                           jnp.sign(x), jnp.floor(x), jnp.ceil(x), jnp.round(x), lax.round(x)), [(5,)], (-3.0, 3.0)),
    "compare_select": (lambda x, y: (jnp.where(x > y, x, y), jnp.where(x >= y, 1.0, 0.0), jnp.where(x < y, x, 2.0),
                                     jnp.where(x <= y, y, 3.0), jnp.where(x == x, x, 0.0), jnp.where(x != y, y, 1.0),
                                     jnp.maximum(x, y), jnp.minimum(x, y), jnp.clip(x, -0.5, 0.5),
                                     jnp.where(jnp.isfinite(x / (y - y)), 1.0, -1.0)), [(4,), (4,)], (-1.0, 1.0)),
    "logic": (lambda x, y: (jnp.where((x > 0) & (y > 0), 1.0, 0.0), jnp.where((x > 0) | (y > 0), 1.0, 0.0),
                            jnp.where(jnp.logical_xor(x > 0, y > 0), 1.0, 0.0), jnp.where(~(x > 0), 1.0, 0.0),
                            jnp.all(x > -2.0).astype(x.dtype), jnp.any(x > 0.9).astype(x.dtype),
                            (x * 10).astype(jnp.int32).astype(x.dtype)), [(4,), (4,)], (-1.0, 1.0)),
    "reduce": (lambda x: (jnp.sum(x), jnp.prod(x, axis=0), jnp.max(x, axis=1), jnp.min(x),
                          jnp.argmax(x, axis=1).astype(x.dtype), jnp.argmin(x[0]).astype(x.dtype),
                          jnp.cumsum(x, axis=1), jnp.cumprod(x, axis=0), lax.cummax(x, axis=1),
                          lax.cummin(x, axis=1, reverse=True)), [(2, 3)], (-2.0, 2.0)),
    "structure": (lambda x: (x[1], x[::-1], x[jnp.array([0, 2, 2])], jnp.concatenate([x, x[:2]]),
                             jnp.stack([x, 2 * x]), x.reshape(3, 1).T, jnp.pad(x, (1, 2)),
                             lax.dynamic_slice(x, (1,), (2,)), x.at[1].set(5.0),
                             lax.dynamic_update_slice(x, 2 * x[:1], (1,)), jnp.split(x, 3)[1],
                             jnp.flip(jnp.copy(x)), jnp.broadcast_to(x, (2, 3)), lax.squeeze(x[None], (0,)),
                             jnp.eye(3) @ x), [(3,)], (-1.0, 1.0)),
    "dot": (lambda x, a: (jnp.asarray(W, x.dtype) @ x, jnp.dot(x, x), jnp.einsum("ij,j->i", a, x),
                          jnp.einsum("bij,bj->bi", jnp.stack([a, 2 * a]), jnp.stack([x, x]))), [(3,), (2, 3)],
            (-1.0, 1.0)),
    "jacobian": (lambda x: (jax.jacfwd(lambda v: jnp.sin(v) * v[::-1])(x),), [(3,)], (-1.0, 1.0)),
    "control": (lambda x: (_cond(x), _switch(x), jax.nn.relu(x), jax.nn.softplus(x), jax.checkpoint(jnp.sin)(x),
                           jax.jit(jnp.cos)(x), jnp.linalg.norm(x)), [(3,)], (-1.0, 1.0)),
}


def _inputs(shapes, domain, dtype, seed):
    rng = np.random.default_rng(seed)
    return [rng.uniform(*domain, size=shape).astype(dtype) for shape in shapes]


def _outputs(case, dtype):
    """The case as a function returning a flat list of arrays of ``dtype``."""
    fn = CASES[case][0]
    return lambda *xs: [jnp.asarray(o).astype(dtype) for o in jax.tree_util.tree_leaves(fn(*xs))]


@functools.lru_cache(maxsize=None)
def _jaxpr(case, dtype):
    _, shapes, domain = CASES[case]
    return jax.make_jaxpr(_outputs(case, dtype))(*_inputs(shapes, domain, dtype, 0))


@pytest.fixture(scope="module")
def library():
    """One compiled library with every case in float64 (``<case>_f64``) and float32 (``<case>_f32``)."""
    source = PRELUDES["c"] + "".join(
        c_function(f"{case}_{tag}", _jaxpr(case, dtype), qualifier="")
        for case in CASES for tag, dtype in (("f64", np.float64), ("f32", np.float32)))
    return load_library(source)


def _call_c(library, case, dtype, xs):
    tag = "f64" if dtype == np.float64 else "f32"
    closed = _jaxpr(case, dtype)
    outs = [np.zeros(v.aval.shape, v.aval.dtype) for v in closed.jaxpr.outvars]
    fn = getattr(library, f"{case}_{tag}")
    fn.restype = None
    fn(*[ctypes.c_void_p(np.ascontiguousarray(a).ctypes.data) for a in xs + outs])
    return outs


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case", list(CASES))
def test_generated_c_matches_jax_on_random_inputs(library, case, dtype):
    _, shapes, domain = CASES[case]
    rtol = 1e-12 if dtype == np.float64 else 2e-6
    samples = [_inputs(shapes, domain, dtype, seed + 1) for seed in range(3)]
    batched = jax.jit(jax.vmap(_outputs(case, dtype)))(*[jnp.stack(xs) for xs in zip(*samples)])
    for seed, xs in enumerate(samples):
        want = [np.asarray(o[seed]) for o in batched]
        got = _call_c(library, case, dtype, xs)
        for k, (g, w) in enumerate(zip(got, want)):
            assert g.dtype == np.dtype(dtype) and w.dtype == np.dtype(dtype)
            np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol, err_msg=f"{case} output {k} (seed {seed})")


def test_every_supported_primitive_is_exercised():
    seen = set()

    def walk(jaxpr):
        seen.update(eqn.primitive.name for eqn in jaxpr.eqns)
        for sub in jax.extend.core.subjaxprs(jaxpr):
            walk(sub)

    for case in CASES:
        walk(_jaxpr(case, np.float64).jaxpr)
    assert supported_primitives() - seen == set()


def test_literals_round_trip_exactly():
    for value in (0.1, -2.5, 1e-300, 6.02214076e23, 1 / 3):
        assert float(literal(value, np.float64).strip("()")) == value
        assert np.float32(literal(value, np.float32).strip("()f")) == np.float32(value)
    assert literal(np.inf, np.float32) == "((float)SCIML_INF)"
    assert literal(-np.inf, np.float64) == "(-(double)SCIML_INF)"
    assert literal(np.nan, np.float64) == "((double)SCIML_NAN)"
    assert literal(-3, np.int64) == "(-3LL)"


def test_unsupported_primitive_names_it_and_the_jax_backend():
    closed = jax.make_jaxpr(lambda x: lax.while_loop(lambda v: v[0] < 10.0, lambda v: v * 2.0, x))(jnp.ones(2))
    with pytest.raises(UnsupportedPrimitiveError, match=r"primitive `while`.*Use `backend=\"jax\"`"):
        c_function("loop", closed)


def test_index_computed_from_the_state_is_rejected():
    closed = jax.make_jaxpr(lambda x: x[jnp.argmax(x)])(jnp.ones(3))
    with pytest.raises(UnsupportedPrimitiveError, match="indices known"):
        c_function("dynamic_index", closed)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc")
def test_generated_c_compiles_without_warnings(tmp_path):
    source = PRELUDES["c"] + "".join(c_function(f"{case}_f64", _jaxpr(case, np.float64)) for case in ("arith", "dot"))
    path = tmp_path / "k.c"
    path.write_text(source + "int main(void) { return 0; }\n")
    result = subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-Wno-unused-function",
                             "-fsyntax-only", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
