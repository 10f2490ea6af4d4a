"""Sensitivity methods: how gradients flow through ``sciml.solve`` (pass as ``adjoint=``)."""

from sciml.adjoints._base import AbstractAdjoint
from sciml.adjoints.auto import Auto
from sciml.adjoints.direct import Direct

__all__ = ["AbstractAdjoint", "Auto", "Direct"]
