"""The generated C kernel as an XLA custom call: one trajectory solved inside a jitted program.

XLA's CPU runtime runs a `while` loop body as a sequence of small kernels, ~25 ns each, ~20 per
explicit RK step; the generated C kernel does a whole step in registers. Wrapping the kernel in an
XLA FFI handler (the plain C API of ``xla/ffi/api/c_api.h``, shipped with jaxlib) lets a jitted solve
call it like any other operation: no host round trip, no Python per call.

The handler is generated next to the kernel (same translation unit), compiled by the system C compiler,
cached like every kernel, and registered with JAX under a name derived from its source hash.

Under `jax.vmap` the call takes the whole batch at once (every operand with a leading batch axis; the
handler solves its trajectories one after another), and it is partitioned along that axis: a batch
sharded over devices (or over the processes of `jax.distributed`) is solved where it lies, each device
its own share, with no gather of the batch onto every device.
"""

from __future__ import annotations

import functools
import hashlib

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_batching import custom_vmap
from jax.experimental.custom_partitioning import custom_partitioning
from jax.sharding import NamedSharding, PartitionSpec

from sciml.kernel._build import load_library
from sciml.kernel._kernel_spec import KernelMethod, KernelSpec, entry_parameters, stat_names
from sciml.kernel._launch import source_for

_REGISTERED: set[str] = set()


def _handler_source(spec: KernelSpec) -> str:
    """C for ``sciml_ffi``: unpack XLA's buffers (the kernel's arrays in entry-point order, then
    ``max_steps`` as int32, which JAX has with or without x64; the outputs after them), each with a
    leading batch axis, and solve the batch's trajectories one after another. The number of save points
    is read from the shape of ``ys``, so one build serves every ``m``, ``max_steps`` and batch size."""
    params = entry_parameters(spec)
    buffers = [name for ctype, name in params if ctype != "long long"]
    outputs = ("ys", "yf", "tout", "iout")
    inputs = [b for b in buffers if b not in outputs]
    ints = {"n_traj": "1", "m": "m", "max_steps": f"(long long)((const int*)B({len(inputs)}, a)->data)[e]"}
    call = []
    for ctype, name in params:
        if ctype == "long long":
            call.append(ints[name])
        else:
            where = f"{inputs.index(name)}, a" if name in inputs else f"{outputs.index(name)}, r"
            call.append(f"({ctype})B({where})->data + e * sciml_per(B({where}))")
    return (
        '#include "xla/ffi/api/c_api.h"\n'
        "#define B(k, list) ((XLA_FFI_Buffer*)(list)[k])\n"
        "/* elements of one batch entry of a buffer (its shape past the leading batch axis) */\n"
        "static long long sciml_per(const XLA_FFI_Buffer* b) {\n"
        "    long long count = 1;\n"
        "    for (long long i = 1; i < (long long)b->rank; ++i) count *= (long long)b->dims[i];\n"
        "    return count;\n"
        "}\n"
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
        "    const long long m = B(0, r)->rank == 3 ? (long long)B(0, r)->dims[1] : 0;  /* (b, m, n), or (b,) */\n"
        "    const long long batch = (long long)B(0, a)->dims[0];\n"
        "    for (long long e = 0; e < batch; ++e)\n"
        f"        sciml_ensemble({', '.join(call)});\n"
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
    the stats named by `stat_names` (status first). Under `jax.vmap` one call solves the batch, on the
    devices that hold it.
    """
    m, n = int(ts.shape[0]), spec.n
    real, time = spec.state_dtype, spec.time_dtype
    args = [jnp.reshape(jnp.asarray(x).astype(a.dtype if a.dtype != np.bool_ else np.int32), (-1,))
            for x, a in zip(arg_leaves, spec.args)]
    operands = (jnp.reshape(y0, (n,)).astype(real), *args, tp.astype(time),
                (ts if m else jnp.zeros((1,), time)).astype(time), tol.astype(real),
                jnp.asarray(min(int(max_steps), np.iinfo(np.int32).max), jnp.int32))
    call = _batched_call(name, bool(m), len(stat_names(method)), np.dtype(real), np.dtype(time), len(args))
    ys, yf, tout, iout = call(*(x[None] for x in operands))
    return (ys[0] if m else None), yf[0], tout[0], iout[0]


@functools.lru_cache(maxsize=256)
def _batched_call(name: str, save: bool, n_stats: int, real: np.dtype, time: np.dtype, n_args: int):
    """The custom call over a batch: every operand and result has a leading batch axis. `jax.vmap` of
    it folds the new axis into that one (so nested vmaps make one call), and the SPMD partitioner
    splits it along that axis (`_partitioned`)."""
    partitioned = _partitioned(name, save, n_stats, real, time, n_args)

    @custom_vmap
    def call(*operands):
        return partitioned(*operands)

    @call.def_vmap
    def _fold(axis_size, in_batched, *operands):
        ops = [x if batched else jnp.broadcast_to(x, (axis_size, *x.shape))
               for x, batched in zip(operands, in_batched)]
        outs = call(*(jnp.reshape(x, (axis_size * x.shape[1], *x.shape[2:])) for x in ops))
        return (tuple(jnp.reshape(o, (axis_size, o.shape[0] // axis_size, *o.shape[1:])) for o in outs),
                (True,) * 4)

    return call


def _ffi(name: str, save: bool, n_stats: int, real, time, *operands):
    """The custom call itself on a (local) batch of ``b`` trajectories."""
    b, n = operands[0].shape
    outs = (jax.ShapeDtypeStruct((b, operands[-3].shape[1], n) if save else (b,), real),
            jax.ShapeDtypeStruct((b, n), real), jax.ShapeDtypeStruct((b, 2), time),
            jax.ShapeDtypeStruct((b, n_stats), np.int32))
    return tuple(jax.ffi.ffi_call(name, outs)(*operands))


def _partitioned(name: str, save: bool, n_stats: int, real, time, n_args: int):
    """`_ffi` split along the batch axis, as the batch's sharding splits it: every trajectory is solved
    on the device that holds it; the rest of each operand (a trajectory's whole state, times,
    tolerances) stays whole."""
    lower = functools.partial(_ffi, name, save, n_stats, real, time)

    @custom_partitioning
    def partitioned(*operands):
        return lower(*operands)

    def along_batch(mesh, arg_shapes, shapes):
        spec = arg_shapes[0].sharding.spec
        axis = spec[0] if len(spec) else None
        return tuple(NamedSharding(mesh, PartitionSpec(axis, *[None] * (len(s.shape) - 1))) for s in shapes)

    def infer(mesh, arg_shapes, result_shape):
        return along_batch(mesh, arg_shapes, result_shape)

    def partition(mesh, arg_shapes, result_shape):
        return mesh, lower, along_batch(mesh, arg_shapes, result_shape), along_batch(mesh, arg_shapes, arg_shapes)

    # Shardy's form of the same rule: "b" is the batch; every other dimension is one trajectory's, kept whole
    ranks_in = [2] * (1 + n_args + 3) + [1]
    ranks_out = [3 if save else 1, 2, 2, 2]
    names = iter(f"d{k}" for k in range(100))
    whole = []

    def term(rank):
        dims = [next(names) for _ in range(rank - 1)]
        whole.extend(dims)
        return " ".join(["b", *dims])

    rule = ", ".join(term(r) for r in ranks_in) + " -> " + ", ".join(term(r) for r in ranks_out)
    try:
        partitioned.def_partition(partition=partition, infer_sharding_from_operands=infer, sharding_rule=rule,
                                  need_replication_factors=tuple(whole))
    except TypeError:  # a jax without Shardy's rules
        partitioned.def_partition(partition=partition, infer_sharding_from_operands=infer)
    return partitioned
