"""The Python side of `backend="cupy"` on the CPU, with a stand-in for CuPy.

The stand-in keeps arrays in host memory and "launches" a kernel by compiling its CUDA source as C++
(with a few lines defining ``__global__``, ``threadIdx``, ...) and calling it once per GPU thread of
the grid. That runs the exact CUDA text the GPU would get, through the backend's argument marshalling,
grid computation, array layout and result conversion. tests/gpu runs the real thing.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import sys
import types

import jax
import numpy as np
import pytest

import sciml
from sciml.kernel import _cupy as _cupy_backend
from tests.ensemble.problems import N, PROBLEMS, saveat, tolerances

SHIM = r"""
#include <math.h>
#include <string.h>
struct sciml_dim3 { unsigned x; };
static sciml_dim3 blockIdx, blockDim, threadIdx;
#define __global__
#define __device__
static inline double __longlong_as_double(long long v) { double d; memcpy(&d, &v, sizeof d); return d; }
extern "C" void sciml_shim_thread(unsigned block, unsigned threads, unsigned thread) {
    blockIdx.x = block; blockDim.x = threads; threadIdx.x = thread;
}
"""


class _Array(np.ndarray):
    """A "device" array: host memory, with CuPy's ``get()``."""

    def get(self):
        return np.asarray(self)


class _Kernel:
    max_threads_per_block = 64

    def __init__(self, lib):
        self.lib = lib

    def __call__(self, grid, block, args):
        c_args = [ctypes.c_longlong(int(a)) if isinstance(a, np.integer) else ctypes.c_void_p(a.ctypes.data)
                  for a in args]
        for b in range(grid[0]):
            for t in range(block[0]):
                self.lib.sciml_shim_thread(b, block[0], t)
                self.lib.sciml_ensemble(*c_args)


def _fake_cupy(tmp_path):
    def raw_module(code):
        src, lib = tmp_path / f"k{abs(hash(code))}.cpp", tmp_path / f"k{abs(hash(code))}.so"
        src.write_text(SHIM + code)
        subprocess.run(["g++", "-O1", "-shared", "-fPIC", str(src), "-o", str(lib)], check=True)
        return types.SimpleNamespace(get_function=lambda name: _Kernel(ctypes.CDLL(str(lib))))

    fake = types.ModuleType("cupy")
    fake.ndarray = _Array
    fake.asarray = lambda x, dtype=None: np.asarray(x, dtype).view(_Array)
    for name in ("concatenate", "reshape", "empty", "ascontiguousarray", "broadcast_to"):
        setattr(fake, name, lambda *a, _np=getattr(np, name), **k: _np(*a, **k).view(_Array))
    fake.from_dlpack = lambda x: np.asarray(x).view(_Array)
    fake.RawModule = raw_module
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1))
    return fake


@pytest.fixture
def fake_cupy(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(tmp_path))
    monkeypatch.setattr(_cupy_backend, "_MODULES", {})
    return sys.modules["cupy"]


@pytest.mark.skipif(shutil.which("g++") is None, reason="no g++")
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_cupy_backend_runs_its_cuda_source_and_matches_the_c_backend(fake_cupy, dtype):
    f, y0s, t_span, params = PROBLEMS["lotka_volterra"](dtype)
    rtol, atol = tolerances(dtype)
    grid = saveat(t_span, dtype)
    kw = dict(saveat=grid, rtol=rtol, atol=atol)
    on_gpu = sciml.solve_ensemble(f, fake_cupy.asarray(y0s), t_span, args=fake_cupy.asarray(params),
                                  backend="cupy", **kw)
    on_c = sciml.solve_ensemble(f, y0s, t_span, args=params, backend="c", **kw)
    assert isinstance(on_gpu.ys, np.ndarray) and on_gpu.backend == "cupy"   # arrays of the input's kind
    assert on_gpu.ys.shape == (N, len(grid), 2) and on_gpu.ys.dtype == dtype
    np.testing.assert_allclose(on_gpu.ys, on_c.ys, rtol=10 * rtol, atol=10 * atol)
    np.testing.assert_array_equal(on_gpu.status, on_c.status)
    np.testing.assert_array_equal(on_gpu.stats["naccept"], on_c.stats["naccept"])
    assert on_gpu.message()[0] == "The solve reached t1 successfully."


@pytest.mark.skipif(shutil.which("g++") is None, reason="no g++")
def test_host_inputs_come_back_as_jax_arrays(fake_cupy):
    f, y0s, t_span, params = PROBLEMS["lorenz"](np.float64)
    ens = sciml.solve_ensemble(f, y0s, t_span, args=params, backend="cupy")
    assert isinstance(ens.y_final, jax.Array) and isinstance(ens.status, jax.Array)
    np.testing.assert_array_equal(ens.status, 0)


@pytest.mark.skipif(shutil.which("g++") is None, reason="no g++")
def test_generated_inputs_stream_through_the_cupy_backend(fake_cupy):
    """`inputs=` takes the streaming path of given arrays: 2 chunks of 4 (the last padded), the same
    states and moments as the arrays themselves."""
    from sciml.ensemble import MeanVar

    f, y0s, t_span, params = PROBLEMS["lotka_volterra"](np.float64)
    kw = dict(saveat=saveat(t_span, np.float64), rtol=1e-9, atol=1e-9, backend="cupy", batch_size=4)
    given = sciml.solve_ensemble(f, y0s, t_span, args=params, reduce=MeanVar(), **kw)
    made = sciml.solve_ensemble(f, None, t_span, inputs=lambda i: (y0s[i], params[i]), n_trajectories=N,
                                reduce=MeanVar(), **kw)
    assert made.value.count == N and made.status_counts == given.status_counts
    np.testing.assert_array_equal(made.value.mean, given.value.mean)
    np.testing.assert_array_equal(made.value.variance, given.value.variance)
