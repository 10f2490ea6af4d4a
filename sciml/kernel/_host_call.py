"""`host_call`: `jax.pure_callback`'s contract (a NumPy function called from a compiled program, its
results of declared shapes and dtypes, ``vmap`` one call per batch element) at a fraction of its cost
on CPU.

A `jax.pure_callback` costs ~170 us a call on a CPU (JAX's generic host-callback path); a stiff solve of
a NumPy field makes thousands. Here the call is an XLA FFI custom call to a C trampoline (the plain C
API of ``xla/ffi/api/c_api.h``, built and cached like every kernel), which calls a ``ctypes`` function
pointer with the input and output buffers' addresses; the Python side views them with NumPy.

The pointer travels in the program as a constant, with a token drawn once per process. Both are part
of the program text, so JAX's persistent compilation cache (which keeps programs with custom calls,
not those with `jax.pure_callback`) never hands one process another's program; should one arrive
anyway, the token check fails it with an error naming the fix instead of calling a dead address.
Every function pointer made here is kept for the life of the process (a compiled program may call it
at any later time): one per traced call site, not per call. The callback takes the GIL itself (as
``ctypes`` callbacks do), on whichever XLA thread runs the call. Without a C compiler, without JAX's FFI headers, or
off CPU, `host_call` is `jax.pure_callback` (same results).
"""

from __future__ import annotations

import ctypes
import functools
import secrets

import jax
import jax.numpy as jnp
import numpy as np

from sciml.kernel._build import load_library

_SOURCE = r"""
#include <stdint.h>
#include <string.h>
#include "xla/ffi/api/c_api.h"
typedef int (*sciml_host_fn)(void** inputs, void** outputs, char* message, int capacity);
static uint64_t sciml_token = 0;
void sciml_host_set_token(uint64_t token) { sciml_token = token; }
static XLA_FFI_Error* sciml_host_error(const XLA_FFI_CallFrame* frame, const char* message) {
    XLA_FFI_Error_Create_Args e;
    e.struct_size = XLA_FFI_Error_Create_Args_STRUCT_SIZE;
    e.extension_start = NULL;
    e.message = message;
    e.errc = XLA_FFI_Error_Code_INTERNAL;
    return frame->api->XLA_FFI_Error_Create(&e);
}
XLA_FFI_Error* sciml_host_call(XLA_FFI_CallFrame* frame) {
    if (frame->extension_start != NULL && frame->extension_start->type == XLA_FFI_Extension_Metadata) {
        XLA_FFI_Metadata* md = ((XLA_FFI_Metadata_Extension*)frame->extension_start)->metadata;
        md->api_version.struct_size = XLA_FFI_Api_Version_STRUCT_SIZE;
        md->api_version.extension_start = NULL;
        md->api_version.major_version = XLA_FFI_API_MAJOR;
        md->api_version.minor_version = XLA_FFI_API_MINOR;
        md->traits = 0;
        md->state_type_id.type_id = 0;
        return NULL;
    }
    if (frame->stage != XLA_FFI_ExecutionStage_EXECUTE) return NULL;
    /* args[0]: uint32[4], the process token then the function pointer (low word first) */
    const uint32_t* key = (const uint32_t*)((XLA_FFI_Buffer*)frame->args.args[0])->data;
    uint64_t token = (uint64_t)key[0] | ((uint64_t)key[1] << 32);
    uint64_t address = (uint64_t)key[2] | ((uint64_t)key[3] << 32);
    if (token != sciml_token)
        return sciml_host_error(frame, "sciml: this compiled program calls back into Python objects of another "
                                       "process (it was loaded from JAX's persistent compilation cache); clear "
                                       "that cache or disable it (`jax_compilation_cache_dir`) for this program.");
    int64_t n_in = frame->args.size - 1, n_out = frame->rets.size;
    void* inputs[n_in + 1];
    void* outputs[n_out + 1];
    for (int64_t i = 0; i < n_in; ++i) inputs[i] = ((XLA_FFI_Buffer*)frame->args.args[i + 1])->data;
    for (int64_t i = 0; i < n_out; ++i) outputs[i] = ((XLA_FFI_Buffer*)frame->rets.rets[i])->data;
    char message[2048];
    message[0] = 0;
    if (((sciml_host_fn)(uintptr_t)address)(inputs, outputs, message, (int)sizeof(message)) != 0)
        return sciml_host_error(frame, message);
    return NULL;
}
"""

_NAME = "sciml_host_call"
#: the process's token (nonzero), written into every program's key and into the library
_TOKEN = secrets.randbits(63) | 1
#: every function pointer handed to a compiled program: freeing one that a program still holds would
#: crash that program's next call
_KEPT: list = []
_HOST_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_void_p),
                            ctypes.c_void_p, ctypes.c_int)


@functools.lru_cache(maxsize=None)
def _registered() -> bool:
    """Build and register the trampoline once per process; False where it cannot be (no C compiler, no
    FFI headers, a failed build): `host_call` then uses `jax.pure_callback`."""
    try:
        lib = load_library(_SOURCE, extra_flags=(f"-I{jax.ffi.include_dir()}",))
        lib.sciml_host_set_token.argtypes = [ctypes.c_uint64]
        lib.sciml_host_set_token.restype = None
        lib.sciml_host_set_token(_TOKEN)
        jax.ffi.register_ffi_target(_NAME, jax.ffi.pycapsule(lib.sciml_host_call), platform="cpu")
        return True
    except Exception:  # noqa: BLE001 - any failure means the pure_callback fallback, with the same results
        return False


def host_call(fn, result_shapes, *args, vmap_method: str = "sequential"):
    """``fn(*numpy arrays)`` from traced code, as ``jax.pure_callback(fn, result_shapes, *args,
    vmap_method=vmap_method)`` computes it.

    ``result_shapes``: a `jax.ShapeDtypeStruct` or a tuple of them; ``fn`` must return arrays of exactly
    those shapes (any dtype that casts safely is converted, as `jax.pure_callback` does not: pass what it
    declares). ``args``: arrays of any shape (0-d included) and dtype; ``fn`` gets copies, which it may
    keep. An exception raised by ``fn`` becomes the program's runtime error (its type and message), as
    with `jax.pure_callback`. Like it, the call is pure: XLA may drop or merge calls whose results are
    unused or equal.

    >>> import jax, jax.numpy as jnp, numpy as np
    >>> jax.jit(lambda x: host_call(np.sin, jax.ShapeDtypeStruct((3,), x.dtype), x))(jnp.zeros(3)).tolist()
    [0.0, 0.0, 0.0]
    """
    if jax.default_backend() != "cpu" or not _registered():
        return jax.pure_callback(fn, result_shapes, *args, vmap_method=vmap_method)
    many = isinstance(result_shapes, (tuple, list))
    shapes = tuple(result_shapes) if many else (result_shapes,)
    args = [jnp.asarray(a) for a in args]
    address = _pointer(fn, [(a.shape, np.dtype(a.dtype)) for a in args],
                       [(tuple(s.shape), np.dtype(s.dtype)) for s in shapes], many)
    key = np.array([_TOKEN & 0xFFFFFFFF, _TOKEN >> 32, address & 0xFFFFFFFF, address >> 32], np.uint32)
    outs = jax.ffi.ffi_call(_NAME, shapes, vmap_method=vmap_method)(key, *args)
    return tuple(outs) if many else outs[0]


def _pointer(fn, ins, outs, many: bool) -> int:
    """The address of a C-callable ``fn`` for buffers of ``ins`` and ``outs`` (``(shape, dtype)`` each),
    kept alive for the life of the process; ``many``: ``fn`` returns a sequence of results."""
    in_views = [_viewer(shape, dtype) for shape, dtype in ins]
    out_views = [_viewer(shape, dtype) for shape, dtype in outs]

    def call(inputs, outputs, message, capacity):
        try:
            results = fn(*[view(inputs[i]).copy() for i, view in enumerate(in_views)])
            results = tuple(results) if many else (results,)
            if len(results) != len(outs):
                raise TypeError(f"a host callback returned {len(results)} values where {len(outs)} were declared.")
            for i, (value, (shape, dtype), view) in enumerate(zip(results, outs, out_views)):
                value = np.asarray(value)
                if value.shape != shape:
                    raise TypeError(f"a host callback returned shape {value.shape} for result {i}, declared {shape}.")
                view(outputs[i])[...] = value.astype(dtype, casting="same_kind", copy=False)
            return 0
        except BaseException as err:  # noqa: BLE001 - reported to XLA as the program's error
            text = f"{type(err).__name__}: {err}".encode(errors="replace")[: capacity - 1] + b"\0"
            ctypes.memmove(message, text, len(text))
            return 1

    pointer = _HOST_FN(call)
    _KEPT.append(pointer)
    return ctypes.cast(pointer, ctypes.c_void_p).value


def _viewer(shape, dtype):
    """``view(address)``: the buffer at ``address`` as a NumPy array of ``shape`` and ``dtype``."""
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes == 0:
        return lambda address: np.empty(shape, dtype)
    raw = ctypes.c_char * nbytes
    return lambda address: np.frombuffer(raw.from_address(address), dtype).reshape(shape)
