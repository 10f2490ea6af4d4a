"""The CUDA variant of the kernel source, checked on the CPU: it is the C source with other qualifiers,
one lane per block (one trajectory per GPU thread) and another entry point, includes no header (NVRTC,
which CuPy uses, has none), and compiles with nvcc."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

import sciml.solvers as S
from sciml.kernel._codegen import kernel_body, kernel_source
from sciml.kernel._ctypes import PRELUDES
from sciml.kernel._launch import prepare_launch
from sciml._problem import prepare
from tests.ensemble.problems import assert_warning_free_c, lorenz_ensemble, saveat


def _spec(solver, dtype, grid):
    f, y0s, t_span, params = lorenz_ensemble(dtype)
    problem, options = prepare(f, y0s, t_span, params, solver=solver, saveat=saveat(t_span, dtype) if grid else None,
                               max_steps=1000, backend="c", ensemble=True)
    launch, _ = prepare_launch(problem, options, np, np.asarray)
    return launch.spec, launch.method


CASES = [(S.Tsit5(), np.float32, False), (S.Vern7(), np.float64, True), (S.Rodas5P(), np.float64, True)]
IDS = ["tsit5-f32-final", "vern7-f64-saveat", "rodas5p-f64-saveat"]


@pytest.mark.parametrize("solver, dtype, grid", CASES, ids=IDS)
def test_cuda_source_is_the_c_source_with_other_qualifiers(solver, dtype, grid):
    spec, method = _spec(solver, dtype, grid)
    c_src, cuda_src = kernel_source(spec, method, "c"), kernel_source(spec, method, "cuda")
    body = kernel_body(spec, method)
    assert body in c_src and body in cuda_src
    c_rest = c_src.replace(body, "\0").split("\0")
    cuda_rest = cuda_src.replace(body, "\0").split("\0")
    assert c_rest[0].startswith(PRELUDES["c"]) and cuda_rest[0].startswith(PRELUDES["cuda"])
    assert "#define SCIML_LANES 8" in c_rest[0] and "#define SCIML_LANES 1" in cuda_rest[0]
    assert "#define SCIML_FN static inline" in c_rest[0] and "#define SCIML_FN __device__ static inline" in cuda_rest[0]
    assert "#pragma omp parallel for" in c_rest[1] and "sciml_block(b * SCIML_LANES," in c_rest[1]
    assert cuda_rest[1].startswith('extern "C" __global__ void sciml_ensemble(')
    assert "blockIdx.x * blockDim.x + threadIdx.x" in cuda_rest[1] and "sciml_block(i," in cuda_rest[1]
    assert "#include" not in cuda_src
    float_type = "float" if dtype == np.float32 else "double"
    assert f"typedef {float_type} sciml_real;" in body


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (the CUDA toolkit) is not installed")
@pytest.mark.parametrize("solver, dtype, grid", CASES[::2], ids=IDS[::2])
def test_cuda_source_compiles_with_nvcc(tmp_path, solver, dtype, grid):
    spec, method = _spec(solver, dtype, grid)
    path = tmp_path / "kernel.cu"
    path.write_text(kernel_source(spec, method, "cuda"))
    result = subprocess.run(["nvcc", "-ptx", "-arch=compute_80", "-Werror", "all-warnings", str(path), "-o",
                             str(tmp_path / "kernel.ptx")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert ".entry sciml_ensemble" in (tmp_path / "kernel.ptx").read_text()


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc")
@pytest.mark.parametrize("solver, adaptive, grid", [(S.RK4(), False, True), (S.Dopri8(), True, True),
                                                    (S.Tsit5(), False, False), (S.Rodas5P(), False, True)],
                         ids=["rk4-fixed-saveat", "dopri8-adaptive-saveat", "tsit5-fixed-final", "rodas5p-fixed"])
def test_c_source_is_warning_free_in_every_mode(tmp_path, solver, adaptive, grid):
    f, y0s, t_span, params = lorenz_ensemble(np.float64)
    problem, options = prepare(f, y0s, t_span, params, solver=solver, saveat=saveat(t_span, np.float64) if grid else None,
                               dt0=None if adaptive else 0.01, max_steps=1000, adaptive=adaptive, backend="c",
                               ensemble=True)
    launch, _ = prepare_launch(problem, options, np, np.asarray)
    assert_warning_free_c(kernel_source(launch.spec, launch.method, "c"), tmp_path)
