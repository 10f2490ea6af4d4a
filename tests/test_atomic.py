"""`sciml._atomic.atomic_write`, the one way sciml writes a file: whole or not at all, keeping what the
path was (its mode, its link), refusing what it must not replace, and cleaning up after killed writes."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap

import pytest

from sciml._atomic import atomic_write, atomic_write_bytes, check_destination


def _temporaries(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_a_new_file_gets_the_umask_mode_and_an_explicit_mode_wins(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_bytes(tmp_path / "a", b"x")
        atomic_write_bytes(tmp_path / "b", b"x", mode=0o600)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o600
    assert _temporaries(tmp_path) == []


def test_a_replaced_file_keeps_its_mode(tmp_path):
    path = tmp_path / "secret"
    path.write_bytes(b"old")
    path.chmod(0o600)
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new" and stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_read_only_file_is_refused_and_kept(tmp_path):
    path = tmp_path / "ro"
    path.write_bytes(b"keep")
    path.chmod(0o444)
    with pytest.raises(PermissionError, match="read-only.*chmod u\\+w"):
        atomic_write_bytes(path, b"new", what="`sciml.save`")
    assert path.read_bytes() == b"keep" and _temporaries(tmp_path) == []


def test_a_symlink_is_followed_and_stays_a_link(tmp_path):
    target = tmp_path / "real"
    target.write_bytes(b"old")
    link = tmp_path / "link"
    link.symlink_to(target)
    written = atomic_write_bytes(link, b"new")
    assert link.is_symlink() and target.read_bytes() == b"new" and written == target


def test_a_directory_or_fifo_is_refused_never_replaced(tmp_path):
    with pytest.raises(ValueError, match="is a directory"):
        atomic_write_bytes(tmp_path, b"x")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        atomic_write_bytes(fifo, b"x")
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_a_missing_directory_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.*does not exist"):
        atomic_write_bytes(tmp_path / "missing" / "f", b"x")


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"old")

    def write(file):
        file.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, write)
    assert path.read_bytes() == b"old" and _temporaries(tmp_path) == []


_KILLED_WRITER = textwrap.dedent("""
    import sys, time
    from sciml._atomic import atomic_write

    def write(file):
        file.write(b"n" * 1_000_000)
        file.flush()
        print("writing", flush=True)
        time.sleep(60)

    atomic_write(sys.argv[1], write)
""")


def test_sigkill_mid_write_keeps_the_old_file_and_the_next_write_cleans_up(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(b"old content")
    child = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "writing"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert path.read_bytes() == b"old content"
    assert len(_temporaries(tmp_path)) == 1           # the killed write's leftover
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new" and _temporaries(tmp_path) == []


def test_a_live_writers_temporary_is_left_alone(tmp_path):
    path = tmp_path / "f"
    live = tmp_path / f".f.sciml-{os.getpid()}-abcdef.tmp"
    live.write_bytes(b"in flight")
    atomic_write_bytes(path, b"x")
    assert live.exists()


def test_check_destination_refuses_up_front_what_a_write_would_refuse(tmp_path):
    read_only = tmp_path / "ro"
    read_only.write_bytes(b"keep")
    read_only.chmod(0o444)
    for path, error, message in [(tmp_path, ValueError, "is a directory"), (read_only, PermissionError, "read-only"),
                                 (tmp_path / "missing" / "f", FileNotFoundError, "does not exist")]:
        with pytest.raises(error, match=f"^--out: .*{message}"):
            check_destination(path, what="--out")
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "new")
    assert check_destination(link) == tmp_path / "new"            # what atomic_write would write
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "ro"]   # and nothing was written
