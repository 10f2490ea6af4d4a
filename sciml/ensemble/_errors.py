"""Errors of the ensemble backends that a user can act on."""

from __future__ import annotations


class BackendUnavailableError(RuntimeError):
    """The chosen backend cannot run here (no C compiler, no CuPy or no GPU); the message names another."""


class CompilerNotFoundError(BackendUnavailableError):
    """No working C compiler for `backend="c"`."""


class CompileError(RuntimeError):
    """A compiler rejected generated source (a bug in sciml: please report it with the message)."""
