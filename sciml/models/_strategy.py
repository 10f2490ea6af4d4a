"""Solvers, step-size controllers and adjoints as JSON: how a model that holds them is described for
`sciml.save`.

Each is a frozen dataclass of plain options, so it is written as its class name and fields,
``("Tsit5", ())``, ``("PIDController", (("pcoeff", 0.3), ...))`` or ``("Direct", (("checkpoints", 8),))``,
and rebuilt by looking the name up in ``sciml.solvers`` or ``sciml.adjoints`` (nothing is imported by
name).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sciml.layers._config import encode_value


def _namespace(kind: str):
    from sciml import adjoints, solvers

    if kind == "solver":
        return solvers, solvers.AbstractSolver
    if kind == "controller":
        return solvers, (solvers.PIController, solvers.PIDController)
    return adjoints, adjoints.AbstractAdjoint


def encode_strategy(obj: Any, kind: str) -> Any:
    """The JSON description of a solver, controller or adjoint (``None`` stays ``None``, meaning the
    default)."""
    if obj is None:
        return None
    module, base = _namespace(kind)
    name = type(obj).__name__
    if not isinstance(obj, base) or getattr(module, name, None) is not type(obj):
        raise ValueError(f"the {kind} {obj!r} is not one of `sciml.{module.__name__.split('.')[-1]}`, so the "
                         f"model cannot be described for `sciml.save`. Use a built-in {kind}.")
    fields = tuple((f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init)
    return encode_value((name, fields), kind)


def decode_strategy(data: Any, kind: str) -> Any:
    """Invert :func:`encode_strategy` (``data`` already decoded from JSON)."""
    if data is None:
        return None
    module, base = _namespace(kind)
    try:
        name, fields = data
        cls = getattr(module, name, None)
        options = dict(fields)
    except (TypeError, ValueError):
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ValueError(f"cannot rebuild the {kind} {data!r} of a model description: expected "
                         f"(name, fields) naming a class of `{module.__name__}`.")
    return cls(**options)
