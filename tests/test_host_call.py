"""`sciml.kernel._host_call.host_call`, the XLA loop's call back into a Python field: the same values as the
NumPy function it calls (the oracle), for every state dtype, 0-d buffers, several results and `jax.vmap`;
a raised exception as the program's error; and the Python-field path built on it (`_callback_field`)
under `jax.vmap` with a complex state and through its Jacobian rule."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sciml._callback_field import _XLA_ERRORS, _callback_field
from sciml.kernel._build import compiler
from sciml.kernel import _host_call as host_call_module
from sciml.kernel._host_call import _registered, host_call


def test_the_trampoline_is_used_where_a_c_compiler_exists():
    try:
        compiler()
    except Exception:  # noqa: BLE001 - no compiler: the jax.pure_callback fallback is the contract
        pytest.skip("no C compiler: host_call is jax.pure_callback")
    assert _registered()


@pytest.mark.parametrize("trampoline", [True, False], ids=["ffi", "pure_callback_fallback"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
def test_values_dtypes_scalars_and_vmap_match_numpy(dtype, trampoline, monkeypatch):
    if not trampoline:
        monkeypatch.setattr(host_call_module, "_registered", lambda: False)
    def fn(t, y, k):   # t: 0-d real, y: (3,) state, k: an int32 array
        return (y * t + k).astype(dtype), np.asarray(np.abs(y).sum(), np.float32)

    shapes = (jax.ShapeDtypeStruct((3,), dtype), jax.ShapeDtypeStruct((), np.float32))
    call = jax.jit(jax.vmap(lambda t, y, k: host_call(fn, shapes, t, y, k), in_axes=(0, 0, None)))
    ts = np.array([0.5, 2.0], np.float32)
    ys = (np.arange(6).reshape(2, 3) * (1 + 1j if np.dtype(dtype).kind == "c" else 1)).astype(dtype)
    k = np.array([1, 2, 3], np.int32)
    out, norm = call(ts, ys, k)
    assert out.dtype == dtype and norm.dtype == np.float32 and norm.shape == (2,)
    for i in range(2):
        want, want_norm = fn(ts[i], ys[i], k)
        np.testing.assert_array_equal(np.asarray(out[i]), want)
        np.testing.assert_array_equal(np.asarray(norm[i]), want_norm)


def test_an_exception_becomes_the_programs_error_naming_it():
    def broken(x):
        raise ValueError("the field failed at x")

    with pytest.raises(Exception, match="ValueError: the field failed at x"):
        jax.jit(lambda x: host_call(broken, jax.ShapeDtypeStruct((2,), x.dtype), x))(jnp.ones(2)).block_until_ready()


def test_a_wrong_result_shape_is_an_error_not_a_broadcast():
    with pytest.raises(Exception, match=r"returned shape \(\)"):
        jax.jit(lambda x: host_call(lambda x: 1.0, jax.ShapeDtypeStruct((2,), x.dtype), x))(jnp.ones(2)).block_until_ready()


def rotation(t, y, w):
    return 1j * w * y


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_the_called_back_field_under_vmap_and_its_jacobian_rule(dtype):
    """``f = i w y``: values under vmap as NumPy gives them; the JVP in y is ``i w dy`` (the rule's
    forward-difference Jacobian is exact for a linear field up to rounding)."""
    f = _callback_field(rotation, False, np.dtype(dtype).str)
    ys = (np.array([[1.0, 2.0], [3.0, -1.0]]) * (1 + 0.5j)).astype(dtype)
    ts = np.array([0.0, 1.0], np.finfo(dtype).dtype)
    out = jax.jit(jax.vmap(lambda t, y: f(t, y, (2.0,))))(ts, ys)
    assert out.dtype == dtype
    np.testing.assert_allclose(np.asarray(out), rotation(0.0, ys, 2.0), rtol=10 * np.finfo(dtype).eps)
    dy = np.ones(2, dtype)
    _, tangent = jax.jvp(lambda y: f(ts[0], y, (2.0,)), (ys[0],), (dy,))
    np.testing.assert_allclose(np.asarray(tangent), 2j * dy, rtol=10 * np.sqrt(np.finfo(dtype).eps))
    assert not _XLA_ERRORS
