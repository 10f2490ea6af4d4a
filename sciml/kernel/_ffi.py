"""The generated C kernel as an XLA custom call: one trajectory solved inside a jitted program.

XLA's CPU runtime runs a `while` loop body as a sequence of small kernels, ~25 ns each, ~20 per
explicit RK step; the generated C kernel does a whole step in registers. Wrapping the kernel in an
XLA FFI handler (the plain C API of ``xla/ffi/api/c_api.h``, shipped with jaxlib) lets a jitted solve
call it like any other operation: no host round trip, no Python per call.

The handler is generated next to the kernel (same translation unit), compiled by the system C compiler,
cached like every kernel, and registered with JAX under a name derived from its source hash.
"""

from __future__ import annotations

import functools
import hashlib

import jax
import jax.numpy as jnp
import numpy as np

from sciml.kernel._build import load_library
from sciml.kernel._kernel_spec import KernelMethod, KernelSpec, entry_parameters, stat_names
from sciml.kernel._launch import source_for

_REGISTERED: set[str] = set()


def _handler_source(spec: KernelSpec) -> str:
    """C for ``sciml_ffi``: unpack XLA's buffers (the kernel's arrays in entry-point order, then
    ``max_steps`` as an int32 scalar, which JAX has with or without x64; the outputs after them) and
    solve one trajectory. The number of save points is read from the shape of ``ys``, so one build
    serves every ``m`` and ``max_steps``."""
    params = entry_parameters(spec)
    buffers = [name for ctype, name in params if ctype != "long long"]
    outputs = ("ys", "yf", "tout", "iout")
    inputs = [b for b in buffers if b not in outputs]
    ints = {"n_traj": "1", "m": "m", "max_steps": f"(long long)*(const int*)((XLA_FFI_Buffer*)a[{len(inputs)}])->data"}
    call = []
    for ctype, name in params:
        if ctype == "long long":
            call.append(ints[name])
        else:
            where = f"a[{inputs.index(name)}]" if name in inputs else f"r[{outputs.index(name)}]"
            call.append(f"({ctype})((XLA_FFI_Buffer*){where})->data")
    return (
        '#include "xla/ffi/api/c_api.h"\n'
        "XLA_FFI_Error* sciml_ffi(XLA_FFI_CallFrame* frame) {\n"
        "    if (frame->extension_start != NULL && frame->extension_start->type == XLA_FFI_Extension_Metadata) {\n"
        "        XLA_FFI_Metadata* md = ((XLA_FFI_Metadata_Extension*)frame->extension_start)->metadata;\n"
        "        md->api_version.struct_size = XLA_FFI_Api_Version_STRUCT_SIZE;\n"
        "        md->api_version.extension_start = NULL;\n"
        "        md->api_version.major_version = XLA_FFI_API_MAJOR;\n"
        "        md->api_version.minor_version = XLA_FFI_API_MINOR;\n"
        "        md->traits = 0;\n"
        "        md->state_type_id.type_id = 0;\n"
        "        return NULL;\n"
        "    }\n"
        "    if (frame->stage != XLA_FFI_ExecutionStage_EXECUTE) return NULL;\n"
        "    void** a = frame->args.args;\n"
        "    void** r = frame->rets.rets;\n"
        "    const XLA_FFI_Buffer* ys = (const XLA_FFI_Buffer*)r[0];\n"
        "    const long long m = ys->rank == 3 ? (long long)ys->dims[1] : 0;  /* (1, m, n), or (1,) for none */\n"
        f"    sciml_ensemble({', '.join(call)});\n"
        "    return NULL;\n"
        "}\n")


@functools.lru_cache(maxsize=256)
def _target(source: str) -> str:
    """Build ``source`` (kernel + handler), register its handler with JAX; the custom-call name."""
    name = "sciml_kernel_" + hashlib.sha256(source.encode()).hexdigest()[:24]
    if name not in _REGISTERED:
        lib = load_library(source, extra_flags=(f"-I{jax.ffi.include_dir()}",))
        jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(lib.sciml_ffi), platform="cpu")
        _REGISTERED.add(name)
    return name


def target_for(spec: KernelSpec, method: KernelMethod) -> str:
    """Translate, build and register the kernel; its custom-call name. Raises what the translator or
    the compiler raises (call it where a fallback can catch that)."""
    return _target(source_for(spec, method, "c-single") + _handler_source(spec))


def kernel_call(name: str, spec: KernelSpec, method: KernelMethod, y0, arg_leaves, tp, ts, tol,
                max_steps: int):
    """Solve one trajectory with the kernel from inside a traced program.

    ``name``: the custom-call target of ``spec`` (from `target_for`); ``y0``: ``(n,)`` state;
    ``arg_leaves``: the array arguments in the spec's order; ``tp``: ``(5,)`` time
    parameters (t0, t1 along the direction, the direction, first step or 0, largest step); ``ts``:
    ``(m,)`` save times along the direction (``m = 0``: final state only); ``tol``: ``(2n,)`` rtol then
    atol. Returns ``(ys (m, n) or None, y_final (n,), t_final and last dt (2,), int32 stats)`` with
    the stats named by `stat_names` (status first). Under `jax.vmap` the trajectories run one after
    another.
    """
    m, n = int(ts.shape[0]), spec.n
    real, time = spec.state_dtype, spec.time_dtype
    outs = (jax.ShapeDtypeStruct((1, m, n) if m else (1,), real), jax.ShapeDtypeStruct((1, n), real),
            jax.ShapeDtypeStruct((1, 2), time), jax.ShapeDtypeStruct((1, len(stat_names(method))), np.int32))
    args = [jnp.reshape(jnp.asarray(x).astype(a.dtype if a.dtype != np.bool_ else np.int32), (-1,))
            for x, a in zip(arg_leaves, spec.args)]
    ts_in = ts if m else jnp.zeros((1,), time)
    ys, yf, tout, iout = jax.ffi.ffi_call(name, outs, vmap_method="sequential")(
        jnp.reshape(y0, (1, n)).astype(real), *args, tp.astype(time), ts_in.astype(time), tol.astype(real),
        jnp.asarray(min(int(max_steps), np.iinfo(np.int32).max), jnp.int32))
    return (ys[0] if m else None), yf[0], tout[0], iout[0]
