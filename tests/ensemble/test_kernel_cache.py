"""The compiled-kernel cache loads only libraries that this user built for the kernel asked for.

A cached kernel is a shared library, and loading one runs its code (its constructors run inside
``dlopen``). Each test plants what another user, a stale build or a broken compiler could leave in the
cache, and checks that sciml refuses it (a shared or foreign directory or library: a clear error) or
rebuilds it (a corrupt, empty or mis-keyed entry), and that a planted library's constructor, which
writes a marker file, never runs. Every test has its own cache (``SCIML_CACHE_DIR``) and builds
sources no other test builds, since loaded kernels are also remembered in memory by key.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pytest

from sciml.ensemble import CompileError, UnsafeCacheError
from sciml.kernel import _build as _c_backend
from sciml.kernel._build import library_key, load_library

NOBODY = 65534
needs_root = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                                reason="giving a file to another user (uid 65534) needs root")


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    directory = tmp_path / "cache" / "kernels"
    monkeypatch.setenv("SCIML_CACHE_DIR", str(directory))
    return directory


def fresh_source() -> tuple[str, int]:
    """A kernel no other test has built, and the value its ``probe()`` returns."""
    value = uuid.uuid4().int % 1_000_000
    return f"int probe(void) {{ return {value}; }}\n", value


def probe(lib) -> int:
    return lib.probe()


def entry(source: str, directory: Path) -> tuple[Path, Path]:
    """Where the library of ``source`` and its checksum live in ``directory``."""
    path = directory / f"sciml_{library_key(source)}.so"
    return path, path.with_name(path.name + ".sha256")


def planted_library(tmp_path: Path, marker: Path, key: str) -> bytes:
    """A library that announces itself as kernel ``key`` and whose constructor creates ``marker``."""
    src = tmp_path / "planted.c"
    src.write_text('#include <stdio.h>\n'
                   '__attribute__((constructor)) static void planted(void) {\n'
                   f'    FILE* f = fopen("{marker}", "w"); if (f) {{ fputs("ran", f); fclose(f); }}\n'
                   '}\n'
                   'int probe(void) { return -1; }\n'
                   f'const char sciml_kernel_key[] = "sciml-kernel-key:{key}";\n')
    out = tmp_path / "planted.so"
    subprocess.run([_c_backend.compiler()[0], "-shared", "-fPIC", str(src), "-o", str(out)], check=True)
    return out.read_bytes()


def plant(path: Path, data: bytes, mode: int = 0o600, checksum: bool = True) -> None:
    """Put ``data`` at ``path`` with ``mode``, with a matching checksum beside it when ``checksum``."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)
    if checksum:
        record = path.with_name(path.name + ".sha256")
        record.write_text(f"{hashlib.sha256(data).hexdigest()}  {path.name}\n")
        os.chmod(record, 0o600)


def test_a_planted_library_runs_its_constructor_when_loaded(tmp_path):
    """The control for the tests below: where the marker is absent, the planted code did not run."""
    marker = tmp_path / "planted-ran"
    path = tmp_path / "planted-copy.so"
    path.write_bytes(planted_library(tmp_path, marker, "0" * 32))
    ctypes.CDLL(str(path))
    assert marker.read_text() == "ran"


def test_the_cache_directory_is_created_private_whatever_the_umask(cache):
    source, value = fresh_source()
    old = os.umask(0)
    try:
        lib = load_library(source)
    finally:
        os.umask(old)
    assert probe(lib) == value
    for directory in (cache, cache.parent):   # every directory sciml created, not only the last
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    for path in entry(source, cache):          # the library and its checksum: this user's alone
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    library, checksum = entry(source, cache)
    assert checksum.read_text().split()[0] == hashlib.sha256(library.read_bytes()).hexdigest()


def test_a_verified_library_is_loaded_without_building(cache, monkeypatch):
    source, value = fresh_source()
    load_library(source)
    monkeypatch.setattr(_c_backend, "_LOADED", {})   # as in a new process
    monkeypatch.setattr(_c_backend, "_build", lambda *a: pytest.fail("the cached library was rebuilt"))
    assert probe(load_library(source)) == value


@pytest.mark.parametrize("mode", [0o666, 0o620], ids=["world-writable", "group-writable"])
def test_a_library_others_can_write_is_refused_and_never_runs(cache, tmp_path, mode):
    source, _ = fresh_source()
    path, _ = entry(source, cache)
    marker = tmp_path / "planted-ran"
    plant(path, planted_library(tmp_path, marker, library_key(source)), mode=mode)
    with pytest.raises(UnsafeCacheError, match=rf"kernel library '{path}' can be written by group or others "
                                               rf"\(mode {mode:#o}\).*rm .*SCIML_CACHE_DIR"):
        load_library(source)
    assert not marker.exists()


@needs_root
def test_a_library_of_another_user_is_refused_and_never_runs(cache, tmp_path):
    source, _ = fresh_source()
    path, checksum = entry(source, cache)
    marker = tmp_path / "planted-ran"
    plant(path, planted_library(tmp_path, marker, library_key(source)))
    os.chown(path, NOBODY, NOBODY)
    with pytest.raises(UnsafeCacheError, match=rf"'{path}' belongs to uid {NOBODY}, not to you \(uid 0\)"):
        load_library(source)
    assert not marker.exists()


def test_a_library_under_another_kernels_key_is_rebuilt_and_never_runs(cache, tmp_path):
    # Even owned by this user, private and with a matching checksum, it announces another kernel.
    source, value = fresh_source()
    path, _ = entry(source, cache)
    marker = tmp_path / "planted-ran"
    plant(path, planted_library(tmp_path, marker, "0" * 32))
    assert probe(load_library(source)) == value
    assert not marker.exists()


def test_a_valid_kernel_copied_under_another_key_is_rebuilt(cache):
    first, _ = fresh_source()
    second, value = fresh_source()
    load_library(first)
    for src, dst in zip(entry(first, cache), entry(second, cache)):
        shutil.copyfile(src, dst)
    assert probe(load_library(second)) == value


@pytest.mark.parametrize("damage", ["empty", "truncated", "no checksum", "wrong checksum"])
def test_a_damaged_entry_is_rebuilt(cache, monkeypatch, damage):
    source, value = fresh_source()
    load_library(source)
    monkeypatch.setattr(_c_backend, "_LOADED", {})   # as in a new process
    path, checksum = entry(source, cache)
    data = path.read_bytes()
    if damage in ("empty", "truncated"):
        # A new file, as another process would leave it: this process has the old one mapped, and
        # cutting a mapped file short would crash it (as it would any program using the library).
        path.unlink()
        path.write_bytes(b"" if damage == "empty" else data[: len(data) // 2])
        os.chmod(path, 0o600)
    elif damage == "no checksum":
        checksum.unlink()
    else:
        checksum.write_text("0" * 64 + f"  {path.name}\n")
    assert probe(load_library(source)) == value
    assert checksum.read_text().split()[0] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_compiler_that_writes_nothing_is_named_and_leaves_no_files(cache, tmp_path, monkeypatch):
    true = shutil.which("true")
    if true is None:
        pytest.skip("no `true` command")
    build_tmp = tmp_path / "tmp"
    build_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(build_tmp))
    monkeypatch.setenv("CC", true)
    _c_backend.compiler.cache_clear()
    try:
        with pytest.raises(CompileError, match=rf"the C compiler `{true}` reported success but wrote no "
                                               rf"library.*Set `CC` to a working C compiler"):
            load_library(fresh_source()[0])
    finally:
        _c_backend.compiler.cache_clear()
    assert os.listdir(cache) == [] and os.listdir(build_tmp) == []


def test_a_cache_directory_others_can_write_is_refused_with_the_fix(cache):
    cache.mkdir(parents=True)
    os.chmod(cache, 0o777)
    with pytest.raises(UnsafeCacheError, match=rf"kernel cache directory '{cache}' can be written by group or "
                                               rf"others \(mode 0o777\).*Set `SCIML_CACHE_DIR` to a directory "
                                               rf"only you can write"):
        load_library(fresh_source()[0])
    assert os.listdir(cache) == []


@needs_root
def test_a_cache_directory_of_another_user_is_refused(cache):
    cache.mkdir(parents=True, mode=0o700)
    os.chown(cache, NOBODY, NOBODY)
    with pytest.raises(UnsafeCacheError, match=rf"kernel cache directory '{cache}' belongs to uid {NOBODY}, "
                                               rf"not to you.*Set `SCIML_CACHE_DIR`"):
        load_library(fresh_source()[0])
    assert os.listdir(cache) == []


_REFUSED_CACHE_SCRIPT = """
import json, numpy as np, jax.numpy as jnp, sciml
from sciml.ensemble import UnsafeCacheError
from sciml.kernel import _cache as _kernel_cache

checks, check = [], _kernel_cache.private_directory
_kernel_cache.private_directory = lambda: checks.append(1) or check()
try:
    sciml.solve_ensemble(lambda t, y, a: -y, np.ones((2, 1)), (0.0, 1.0), backend="c")
    refused = ""
except UnsafeCacheError as err:
    refused = str(err)
auto = [float(sciml.solve(lambda t, y, a: -k * y, jnp.ones(1), (0.0, 1.0), rtol=1e-10, atol=1e-10).ys[-1, 0])
        for k in (2.0, 3.0)]
print(json.dumps({"refused": refused, "auto": auto, "checks": len(checks)}))
"""


def test_a_refused_cache_is_an_error_for_c_and_skipped_by_auto_for_the_process(tmp_path):
    # In a process of its own: what "auto" learns about the kernel lasts for the rest of the process.
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run([sys.executable, "-c", _REFUSED_CACHE_SCRIPT], cwd=root, capture_output=True, text=True,
                         env=dict(os.environ, SCIML_CACHE_DIR=str(shared)), timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.splitlines()[-1])
    assert f"'{shared}' can be written by group or others" in out["refused"]    # backend="c": the error
    np.testing.assert_allclose(out["auto"], np.exp([-2.0, -3.0]), rtol=1e-8)     # "auto": the XLA loop,
    assert out["checks"] == 2                  # which it stops trying after one refusal (c, then auto once)
    assert os.listdir(shared) == []
