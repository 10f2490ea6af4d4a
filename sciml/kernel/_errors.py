"""Errors of the ensemble backends that a user can act on."""

from __future__ import annotations


class BackendUnavailableError(RuntimeError):
    """The chosen backend cannot run here (no C compiler, no CuPy or no GPU); the message names another."""


class CompilerNotFoundError(BackendUnavailableError):
    """No working C compiler for `backend="c"`."""


class UnsafeCacheError(BackendUnavailableError):
    """The compiled-kernel cache (its directory or a library in it) is not private to this user, so
    loading code from it could run what another user put there; the message names the path and the fix."""


class CompileError(RuntimeError):
    """A compiler rejected generated source or produced no library; the message says which."""
