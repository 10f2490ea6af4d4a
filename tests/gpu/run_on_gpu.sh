#!/usr/bin/env bash
# The one prepared run for a machine with an NVIDIA GPU (CuPy and a CUDA JAX installed; no network
# needed): the GPU tests, then the ensemble benchmark (DiffEqGPU's Lorenz setup up to N = 2^23, cupy and
# jax against diffrax's vmap on the same GPU, and the arithmetic floor). Uses the checkout as it is
# (PYTHONPATH, no pip install: an offline machine may hold other versions of jax than pyproject's).
# Everything printed is also written under ${OUT:-/tmp/sciml_gpu}. Budget: about 10 minutes.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp/sciml_gpu}
mkdir -p "$out"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
python=${PYTHON:-python3}
nvidia-smi > "$out/nvidia_smi.txt" 2>&1
$python -c "import sys, jax, cupy, diffrax; print(sys.version.split()[0], 'jax', jax.__version__, jax.devices(), \
'cupy', cupy.__version__, 'diffrax', diffrax.__version__)" 2>&1 | tee "$out/versions.txt"
timeout 240 $python -m pytest -q -p no:cacheprovider -m gpu tests/gpu 2>&1 | tee "$out/tests_gpu.txt"
timeout 330 $python benchmarks/bench_ensemble.py --repeats 3 --skip-cpu-targets 2>&1 | tee "$out/bench_ensemble.txt"
