"""The SciML models: a neural ODE as a layer, and universal differential equations.

- :class:`NeuralODE`: ``dy/dt = model(y)``; a layer whose forward pass is an ODE solve.
- :class:`UDE`: known physics plus a neural network, as one vector field with params
  ``{"physics": ..., "nn": ...}``.
"""

from sciml.models._neural_ode import NeuralODE
from sciml.models._ude import UDE

__all__ = ["NeuralODE", "UDE"]
