"""``backend="cupy"``: the generated kernel compiled for the GPU by CuPy, one thread per trajectory.

The CUDA variant of the source (`_codegen.kernel_source(..., "cuda")`) is compiled once per source by
`cupy.RawModule` (held here by source hash; CuPy also keeps the binary in its on-disk kernel cache).
Inputs may be CuPy arrays, JAX arrays on the GPU (taken over by DLPack, without a copy), or host
arrays (uploaded once). Results are CuPy arrays when ``y0s`` is one, otherwise JAX arrays handed over
by DLPack, so the data never leaves the GPU. CuPy is imported only when this backend is used.
"""

from __future__ import annotations

import hashlib

import jax
import jax.numpy as jnp
import numpy as np

from sciml.kernel._kernel_spec import entry_parameters
from sciml.kernel._errors import BackendUnavailableError
from sciml.kernel._launch import prepare_launch, source_for

#: threads per block; the kernel keeps the whole state in registers, so blocks are kept small
BLOCK = 128

_MODULES: dict = {}


def cupy_or_error():
    """The ``cupy`` module, or `BackendUnavailableError` saying what is missing and what to use instead."""
    try:
        import cupy
    except ImportError:
        raise BackendUnavailableError(
            "`backend=\"cupy\"` needs CuPy and an NVIDIA GPU, but CuPy is not installed (`pip install "
            "cupy-cuda12x`, matching your CUDA). Use `backend=\"c\"` (the same kernel compiled for the CPU "
            "cores) or `backend=\"jax\"`.") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception:  # CUDARuntimeError when there is no driver
        count = 0
    if count == 0:
        raise BackendUnavailableError(
            "`backend=\"cupy\"` needs an NVIDIA GPU, but CuPy sees none. Use `backend=\"c\"` (the same "
            "kernel compiled for the CPU cores) or `backend=\"jax\"`.")
    return cupy


def compiled_kernel(cupy, source: str):
    """The ``sciml_ensemble`` kernel of ``source``, compiled once per distinct source."""
    key = hashlib.sha256(source.encode()).hexdigest()
    if key not in _MODULES:
        _MODULES[key] = cupy.RawModule(code=source).get_function("sciml_ensemble")
    return _MODULES[key]


def solve_cupy(problem, options) -> dict:
    """The fields of an ensemble's solution from the CUDA kernel (CuPy arrays for CuPy inputs, else JAX)."""
    cupy = cupy_or_error()
    leaves = jax.tree_util.tree_leaves(problem.y0)
    cupy_in = isinstance(leaves[0], cupy.ndarray)
    launch, finish = prepare_launch(problem, options, cupy, lambda x: _to_cupy(cupy, x))
    kernel = compiled_kernel(cupy, source_for(launch.spec, launch.method, "cuda"))
    block = min(BLOCK, int(kernel.max_threads_per_block))
    grid = (launch.n_traj + block - 1) // block
    args = [np.int64(v) if ctype == "long long" else v
            for (ctype, _), v in zip(entry_parameters(launch.spec), launch.values())]
    if grid:
        kernel((grid,), (block,), tuple(args))
    return finish((lambda a: a) if cupy_in else _to_jax(cupy))


def _to_cupy(cupy, x):
    if isinstance(x, cupy.ndarray):
        return x
    if isinstance(x, jax.Array) and all(d.platform == "gpu" for d in x.devices()):
        return cupy.from_dlpack(x)
    return cupy.asarray(np.asarray(x))


def _to_jax(cupy):
    on_gpu = any(d.platform == "gpu" for d in jax.devices())

    def convert(a):
        a = cupy.ascontiguousarray(a)
        # DLPack keeps the data on the GPU; a CPU-only JAX can only take a host copy.
        return jax.dlpack.from_dlpack(a) if on_gpu else jnp.asarray(a.get())

    return convert
