"""One way to write a file: whole or not at all.

Every file sciml writes (model files and checkpoints, the `sciml` command's outputs, the demos'
figures and tables, compiled kernels) goes through :func:`atomic_write`:

- the bytes go to a temporary file in the same directory, are flushed and fsync'ed, and the temporary
  file is renamed over the destination, so a reader (or a crash, or SIGKILL) sees the old file or the
  new one, never a truncated one;
- a file that is replaced keeps its permission bits (a 0600 file stays 0600); a new file gets the mode
  an ordinary ``open(path, "w")`` would give (0666 less the umask), or ``mode=`` where the caller says;
- a read-only file is refused (``PermissionError``), as ``open(path, "w")`` refuses it for anyone but
  root; a directory, device, FIFO or socket at the path is refused (never replaced by a regular file);
- a symbolic link is followed: its target is replaced atomically and the link stays a link;
- temporary files left by an earlier write that was killed (named ``.<name>.sciml-<pid>-<hex>.tmp``,
  whose process no longer runs) are removed by the next write to the same path.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from pathlib import Path
from typing import BinaryIO, Callable

__all__ = ["atomic_write", "atomic_write_bytes", "check_destination"]


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object], *, mode: int | None = None,
                 what: str = "the file") -> Path:
    """Call ``write(file)`` on a temporary binary file beside ``path`` and move it over ``path``.

    Args:
        path: the destination; a symlink is resolved and its target replaced.
        write: writes the whole content to the open binary file it is given.
        mode: permission bits of a new file (default: 0o666 less the umask); an existing file keeps its own.
        what: how error messages name the file (e.g. "`sciml.save`").

    Returns:
        The path actually written (the symlink's target where ``path`` is a link).

    Raises:
        FileNotFoundError: the directory does not exist.
        PermissionError: ``path`` is read-only.
        ValueError: ``path`` is a directory, a device, a FIFO or a socket.

    Example:
        >>> import os, tempfile
        >>> from sciml._atomic import atomic_write
        >>> p = os.path.join(tempfile.mkdtemp(), "out.txt")
        >>> _ = atomic_write(p, lambda f: f.write(b"hello"))
        >>> open(p).read()
        'hello'
    """
    target, existing = _destination(path, what)
    directory = target.parent
    _remove_stale_temporaries(target)
    tmp = directory / f".{target.name}.sciml-{os.getpid()}-{secrets.token_hex(6)}.tmp"
    create_mode = 0o600 if existing is not None or mode is not None else 0o666  # fixed below, umask-free
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), create_mode)
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        if existing is not None:
            os.chmod(tmp, existing)
        elif mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)
    return target


def check_destination(path: str | os.PathLike, what: str = "the file") -> Path:
    """Refuse, before any work is done, a ``path`` that :func:`atomic_write` would refuse (a missing
    directory, a read-only file, a directory, device, FIFO or socket); return the path it would write.

    A long computation whose result goes to ``path`` checks it first, so that a typo costs no time.

    Raises:
        FileNotFoundError, PermissionError, ValueError: as :func:`atomic_write`.
    """
    return _destination(path, what)[0]


def _destination(path, what: str) -> tuple[Path, int | None]:
    """The resolved ``path`` and the mode of the file there (None if none), or the error that refuses it."""
    target = Path(os.path.realpath(os.fspath(path)))
    existing = _existing_mode(target, what)
    if not target.parent.is_dir():
        raise FileNotFoundError(f"{what}: the directory {str(target.parent)!r} does not exist; create it first "
                                f"(`os.makedirs`).")
    return target, existing


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, mode: int | None = None,
                       what: str = "the file") -> Path:
    """:func:`atomic_write` of ``data``."""
    return atomic_write(path, lambda file: file.write(data), mode=mode, what=what)


def _existing_mode(target: Path, what: str) -> int | None:
    """The permission bits of the regular file at ``target``, None if there is none; refuses the rest."""
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(st.st_mode):
        raise ValueError(f"{what}: {str(target)!r} is a directory; give a file path inside it, "
                                f"e.g. {str(target / 'out')!r}.")
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{what}: {str(target)!r} is not a regular file (a device, FIFO or socket); "
                         f"sciml replaces only regular files. Choose another path.")
    if not st.st_mode & stat.S_IWUSR:
        raise PermissionError(f"{what}: {str(target)!r} is read-only; make it writable (`chmod u+w`) or "
                              f"choose another path.")
    return stat.S_IMODE(st.st_mode)


def _remove_stale_temporaries(target: Path) -> None:
    """Delete the temporaries of earlier writes to ``target`` whose process has gone (killed mid-write)."""
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.sciml-(\d+)-[0-9a-f]+\.tmp$")
    with contextlib.suppress(OSError):
        for entry in os.scandir(target.parent):
            match = pattern.match(entry.name)
            if match and not _process_alive(int(match.group(1))):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True   # exists, owned by someone else (or we cannot tell): leave it
    return True


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable; not every platform can open a directory."""
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
