"""Sensitivity methods: how gradients flow through ``sciml.solve`` (pass as ``adjoint=``)."""

from sciml.adjoints._base import AbstractAdjoint
from sciml.adjoints.auto import Auto
from sciml.adjoints.backsolve import Backsolve
from sciml.adjoints.direct import Direct
from sciml.adjoints.forward import Forward
from sciml.adjoints.interpolating import Interpolating
from sciml.adjoints.quadrature import Quadrature

__all__ = ["AbstractAdjoint", "Auto", "Backsolve", "Direct", "Forward", "Interpolating", "Quadrature"]
