"""The demos behind the `sciml demo` command and the examples: each a readable, complete recipe.

- :mod:`sciml.demos.lotka_volterra`: a UDE learns the missing interaction terms of a predator-prey
  model from noisy data, and symbolic recovery turns the network back into equations.
- :mod:`sciml.demos.spiral`: a neural ODE learns a spiral.
"""
