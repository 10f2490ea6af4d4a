"""The on-disk cache of compiled kernels, which loads only libraries this user built for the kernel asked for.

A cached library is machine code that ``dlopen`` runs (its constructors run on load), so the cache is
guarded like a private bin directory:

- the directory (``$SCIML_CACHE_DIR``, else ``$XDG_CACHE_HOME/sciml/kernels``, else
  ``~/.cache/sciml/kernels``) is created with mode 0700 whatever the umask, and is refused (an
  :class:`UnsafeCacheError`, naming it and the fix) when it, or a library or checksum in it, belongs
  to another user or can be written by group or others;
- each library ``sciml_<key>.so`` is written once, whole (`sciml._atomic.atomic_write_bytes`, mode
  0600), next to a checksum file ``sciml_<key>.so.sha256`` (``sha256sum`` format) written the same way;
- before a library is loaded, its bytes are read from one open file descriptor and must match the
  recorded SHA-256 and contain the kernel's own key (each kernel defines ``sciml_kernel_key``); a
  missing, empty, corrupt, stale or mis-keyed entry is rebuilt and never loaded. On Linux the library
  is then loaded from that same descriptor (``/proc/self/fd/N``), so the file that was checked is the
  file that runs; elsewhere it is loaded by path right after the check;
- after loading, the library's ``sciml_kernel_key`` must name the kernel that was asked for.

One checksum file per library, rather than one manifest for the directory: processes that build
different kernels at the same time each write only their own files, so no entry is lost to a
concurrent read-modify-write and no lock is needed; two processes building the same kernel write the
same bytes, and a reader that sees one's library with the other's checksum rebuilds it.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import stat
from pathlib import Path
from typing import Callable

from sciml._atomic import atomic_write_bytes
from sciml.kernel._errors import CompileError, UnsafeCacheError

#: the C symbol each kernel library defines: ``_KEY_PREFIX`` followed by the kernel's key
KEY_SYMBOL = "sciml_kernel_key"
_KEY_PREFIX = "sciml-kernel-key:"
_WHAT = "the kernel cache"

#: descriptors of the libraries loaded through ``/proc/self/fd/N``, kept open for the life of the
#: process: the dynamic loader finds an already loaded library by its name, so a number reused for
#: another kernel would hand back the first one
_OPEN_FDS: list[int] = []


def cache_dir() -> Path:
    """Where compiled kernels are kept between processes (read from the environment on every call)."""
    if os.environ.get("SCIML_CACHE_DIR"):
        return Path(os.environ["SCIML_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sciml" / "kernels"


def key_definition(key: str) -> str:
    """The C that makes a library say which kernel it is; appended to every kernel's source."""
    return f'\nconst char {KEY_SYMBOL}[] = "{_KEY_PREFIX}{key}";\n'


def load_cached(key: str, build: Callable[[], bytes]) -> ctypes.CDLL:
    """The library of kernel ``key`` from the cache, or ``build()``'s bytes stored there and loaded.

    Raises:
        UnsafeCacheError: the cache directory, or this kernel's library or checksum in it, is not
            private to this user.
        CompileError: the built library does not define the kernel's key.
    """
    directory = private_directory()
    path = directory / f"sciml_{key}.so"
    lib = _load_verified(path, key)
    if lib is not None:
        return lib
    data = build()
    if _marker(key) not in data:
        raise CompileError(f"the library built for kernel {key} does not define `{KEY_SYMBOL}`: the C compiler "
                           f"(`CC`) did not compile the source it was given. Set `CC` to gcc or clang, or use "
                           f"`backend=\"jax\"`.")
    _discard(path)
    atomic_write_bytes(path, data, mode=0o600, what=_WHAT)
    atomic_write_bytes(_checksum_path(path), f"{hashlib.sha256(data).hexdigest()}  {path.name}\n".encode(),
                       mode=0o600, what=_WHAT)
    lib = _load_verified(path, key)
    if lib is None:
        raise UnsafeCacheError(f"the kernel library {str(path)!r} changed between being written and being loaded "
                               f"(another process is writing the same kernel, or something else writes into "
                               f"{str(directory)!r}). Run again; if it persists, set `SCIML_CACHE_DIR` to a new "
                               f"private directory.")
    return lib


def private_directory() -> Path:
    """`cache_dir`, created with mode 0700 where missing and checked to be this user's alone."""
    directory = cache_dir()
    missing = []
    probe = directory
    while not os.path.lexists(probe) and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:  # another process made it meanwhile: checked below like any other
            continue
        os.chmod(path, 0o700)  # exactly 0700 whatever the umask took away
    try:
        st = os.stat(directory)
    except OSError as err:
        raise UnsafeCacheError(f"the kernel cache directory {str(directory)!r} cannot be used ({err}). "
                               f"{_DIRECTORY_FIX}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeCacheError(f"the kernel cache directory {str(directory)!r} is not a directory. "
                               f"{_DIRECTORY_FIX}")
    _check_private(st, directory, "the kernel cache directory", _DIRECTORY_FIX)
    return directory


_DIRECTORY_FIX = ("Set `SCIML_CACHE_DIR` to a directory only you can write (sciml creates a missing one with "
                  "mode 0700; a directory of yours that nobody else has written to can be made so with "
                  "`chmod 700`), or use `backend=\"jax\"`, which needs no compiled kernels.")


def _file_fix(path: Path) -> str:
    return (f"Find out how it got there, then delete it (`rm {str(path)!r}`) so that sciml rebuilds it, or set "
            f"`SCIML_CACHE_DIR` to a new private directory; `backend=\"jax\"` needs no compiled kernels.")


def _check_private(st: os.stat_result, path: Path, what: str, fix: str) -> None:
    """Refuse ``path`` (``st`` its status) unless this user owns it and nobody else may write it."""
    if not hasattr(os, "geteuid"):  # no POSIX owners (Windows): the user profile's own ACLs apply
        return
    uid = os.geteuid()
    if st.st_uid != uid:
        raise UnsafeCacheError(f"{what} {str(path)!r} belongs to uid {st.st_uid}, not to you (uid {uid}); "
                               f"sciml loads compiled code from the kernel cache and will not run code another "
                               f"user could have placed. {fix}")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeCacheError(f"{what} {str(path)!r} can be written by group or others (mode "
                               f"{stat.S_IMODE(st.st_mode):#o}); sciml loads compiled code from the kernel cache "
                               f"and will not run code another user could have placed. {fix}")


def _load_verified(path: Path, key: str) -> ctypes.CDLL | None:
    """The library at ``path`` if it is this user's, whole and kernel ``key``'s; None when it is missing,
    corrupt or stale (the caller rebuilds it); `UnsafeCacheError` when it is someone else's."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except OSError as err:  # a symbolic link (O_NOFOLLOW), or unreadable
        raise UnsafeCacheError(f"the kernel library {str(path)!r} cannot be opened as a regular file ({err}). "
                               f"{_file_fix(path)}") from None
    keep = False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeCacheError(f"the kernel library {str(path)!r} is not a regular file. {_file_fix(path)}")
        _check_private(st, path, "the kernel library", _file_fix(path))
        data = _read_all(fd)
        if _recorded_digest(path) != hashlib.sha256(data).hexdigest() or _marker(key) not in data:
            return None
        lib, keep = _dlopen(fd, path)
    finally:
        if not keep:
            os.close(fd)
    _check_key(lib, path, key)
    return lib


def _recorded_digest(path: Path) -> str | None:
    """The SHA-256 recorded for the library at ``path``; None when there is no (readable) record."""
    checksum = _checksum_path(path)
    try:
        fd = os.open(checksum, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except OSError as err:
        raise UnsafeCacheError(f"the kernel checksum {str(checksum)!r} cannot be opened as a regular file "
                               f"({err}). {_file_fix(checksum)}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeCacheError(f"the kernel checksum {str(checksum)!r} is not a regular file. "
                                   f"{_file_fix(checksum)}")
        _check_private(st, checksum, "the kernel checksum", _file_fix(checksum))
        text = _read_all(fd)[:64].decode("ascii", errors="replace")
    finally:
        os.close(fd)
    return text if len(text) == 64 and all(c in "0123456789abcdef" for c in text) else None


def _dlopen(fd: int, path: Path) -> tuple[ctypes.CDLL, bool]:
    """Load the library open as ``fd`` (at ``path``); whether ``fd`` must stay open."""
    by_fd = f"/proc/self/fd/{fd}"
    if os.path.exists(by_fd):
        lib = ctypes.CDLL(by_fd)
        _OPEN_FDS.append(fd)
        return lib, True
    return ctypes.CDLL(str(path)), False


def _check_key(lib: ctypes.CDLL, path: Path, key: str) -> None:
    expected = _marker(key)
    try:
        got = (ctypes.c_char * len(expected)).in_dll(lib, KEY_SYMBOL).raw
    except ValueError:
        got = b""
    if got != expected:
        raise UnsafeCacheError(f"the library loaded from {str(path)!r} is not kernel {key} (its "
                               f"`{KEY_SYMBOL}` is {got.rstrip(bytes(1))!r}). {_file_fix(path)}")


def _discard(path: Path) -> None:
    """Remove a stale entry (library and checksum), so that its replacement is created with mode 0600."""
    for stale in (path, _checksum_path(path)):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(stale)


def _checksum_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _marker(key: str) -> bytes:
    return (_KEY_PREFIX + key).encode() + b"\0"


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)
