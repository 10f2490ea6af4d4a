"""Compile generated C with the system C compiler into a shared library, cached by source hash.

The library is built once per distinct source (and compiler and flags) and kept in the user's private
kernel cache (`sciml.kernel._cache`: ``$SCIML_CACHE_DIR``, else
``$XDG_CACHE_HOME/sciml/kernels``, else ``~/.cache/sciml/kernels``), so a later process loads it without
compiling. It is built for this CPU's vector instructions (``-march=native``) and with OpenMP when the
compiler supports them; without OpenMP the blocks of trajectories run on one core.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import weakref
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from sciml.kernel._kernel_spec import entry_parameters
from sciml.kernel._errors import CompileError, CompilerNotFoundError
from sciml.kernel._launch import prepare_launch, source_for
from sciml.kernel._cache import key_definition, load_cached

# IEEE arithmetic as written (no contraction into FMAs, no reassociation); errno and trap flags are
# not part of the results, so dropping them lets the compiler vectorise the lanes of a block. No
# basic-block (SLP) vectorisation: GCC 12 packs a field's components into short vectors there and then
# folds a vector `(double)(float)x` to `x`, dropping a float32 rounding that the field asks for (its
# loop vectoriser, which packs the lanes of a block, converts with pack/unpack and keeps it).
_FLAGS = ("-O3", "-std=c99", "-fPIC", "-shared", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math",
          "-fopenmp-simd", "-fno-tree-slp-vectorize")
#: tried in order: this CPU's vector instructions and OpenMP threads, then without either
_OPTIONAL = (("-march=native", "-fopenmp"), ("-fopenmp",), ("-march=native",), ())


@functools.lru_cache(maxsize=None)
def compiler() -> tuple[str, str]:
    """``(path, version line)`` of the C compiler: ``$CC`` if set, else ``cc``, ``gcc`` or ``clang``."""
    candidates = [os.environ["CC"]] if os.environ.get("CC") else ["cc", "gcc", "clang"]
    for name in candidates:
        path = shutil.which(name)
        if path is None:
            continue
        try:
            out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0:
            return path, (out.stdout.splitlines() or [""])[0]
    raise CompilerNotFoundError(
        f"`backend=\"c\"` needs a C compiler, but none of {candidates} was found on PATH. Install one "
        f"(e.g. `apt-get install gcc`) or set `CC`, or use `backend=\"jax\"`.")


_LOADED: dict[str, ctypes.CDLL] = {}


def load_library(source: str, extra_flags: tuple[str, ...] = ()) -> ctypes.CDLL:
    """Compile ``source`` (or reuse the cached build) and load it; ``extra_flags`` go to the compiler
    (e.g. an include directory). The library also defines the kernel's key (see `_kernel_cache`)."""
    cc, _ = compiler()
    key = library_key(source, extra_flags)
    if key not in _LOADED:
        full = source + key_definition(key)
        _LOADED[key] = load_cached(key, lambda: _build(cc, full, tuple(extra_flags)))
    return _LOADED[key]


def library_key(source: str, extra_flags: tuple[str, ...] = ()) -> str:
    """The cache key of ``source`` built with ``extra_flags`` by this compiler for this CPU."""
    _, version = compiler()
    # -march=native code runs only on CPUs with the same instructions: the host's feature flags are
    # part of the key, so a cache directory shared between machines never hands one the other's build.
    flags = " ".join(_FLAGS + tuple(extra_flags))
    return hashlib.sha256("\n".join([version, flags, _cpu_features(), source]).encode()).hexdigest()[:32]


@functools.lru_cache(maxsize=None)
def _cpu_features() -> str:
    """The CPU model and instruction-set flags (Linux), or the platform's machine name elsewhere."""
    try:
        with open("/proc/cpuinfo") as info:
            lines = [line for line in info if line.startswith(("model name", "flags", "Features"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return platform.machine() + platform.processor()


def _build(cc: str, source: str, extra_flags: tuple[str, ...] = ()) -> bytes:
    """The shared library ``cc`` builds from ``source``; everything else it writes is removed."""
    with tempfile.TemporaryDirectory(prefix="sciml_build_") as tmp:
        src = Path(tmp) / "kernel.c"
        src.write_text(source)
        out = Path(tmp) / "kernel.so"
        errors = ""
        for extra in _OPTIONAL:
            result = subprocess.run([cc, *_FLAGS, *extra_flags, *extra, str(src), "-o", str(out), "-lm"],
                                    capture_output=True, text=True)
            if result.returncode == 0:
                data = out.read_bytes() if out.is_file() else b""
                if not data:
                    raise CompileError(f"the C compiler `{cc}` reported success but wrote no library (its output "
                                       f"`-o {out.name}` is missing or empty). Set `CC` to a working C compiler "
                                       f"(gcc or clang), or use `backend=\"jax\"`.")
                return data
            errors = result.stderr
        raise CompileError(f"the C compiler `{cc}` rejected the generated kernel source:\n{errors[-4000:]}\n"
                           f"This is a bug in sciml; `backend=\"jax\"` works meanwhile.")


def run_c(problem, options, target: str = "c"):
    """Run an ensemble ``problem`` with ``options`` (`sciml._problem`) through the generated C kernel on the
    host; the finished `Launch` (its outputs are NumPy arrays) and the function that turns it into a
    solution. ``target="c-single"`` builds the kernel without SIMD blocks, for one trajectory."""
    launch, finish = prepare_launch(problem, options, np, np.asarray)
    run_launch(launch, target)
    return launch, finish


def run_launch(launch, target: str = "c") -> None:
    """Run the kernel on a prepared `Launch` (NumPy arrays), filling its outputs."""
    fn, pointer = _entry_point(launch.spec, launch.method, target)
    fn(*[v if not p else v.ctypes.data for p, v in zip(pointer, launch.values())])


#: the loaded entry point per live spec: hashing the source to find the library costs more than a
#: small solve, and a pipeline calls with the same spec again and again
_ENTRY_POINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _entry_point(spec, method, target):
    """``(function, is_pointer per parameter)`` of ``spec``'s kernel for ``target``, typed for ctypes."""
    entries = _ENTRY_POINTS.setdefault(spec, {})
    if target not in entries:
        fn = load_library(source_for(spec, method, target)).sciml_ensemble
        params = entry_parameters(spec)
        fn.restype = None
        fn.argtypes = [ctypes.c_longlong if ctype == "long long" else ctypes.c_void_p for ctype, _ in params]
        entries[target] = (fn, tuple(ctype != "long long" for ctype, _ in params))
    return entries[target]


def solve_c(problem, options) -> dict:
    """Run an ensemble ``problem`` with ``options`` through the generated C kernel on the host; the
    fields of its `EnsembleSolution`, as JAX arrays."""
    _, finish = run_c(problem, options)
    return finish(jnp.asarray)
