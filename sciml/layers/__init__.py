"""Pure-function layers with explicit parameters and state (Lux semantics)."""

from sciml.layers._core import Layer, from_config

__all__ = ["Layer", "from_config"]
