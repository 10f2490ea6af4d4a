"""jaxtyping aliases used in signatures and docstrings, declared once."""

from __future__ import annotations

from typing import Any

from jaxtyping import Array, ArrayLike, Float, Inexact, Int, PRNGKeyArray, PyTree

Params = PyTree[Array]
State = PyTree[Any]

__all__ = ["Array", "ArrayLike", "Float", "Inexact", "Int", "PRNGKeyArray", "PyTree", "Params", "State"]
