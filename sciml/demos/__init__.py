"""The demos behind the `sciml demo` command and the examples: each a readable, complete recipe.

- :mod:`sciml.demos.lotka_volterra`: a UDE learns the missing interaction terms of a predator-prey
  model from noisy data, and symbolic recovery turns the network back into equations.
- :mod:`sciml.demos.spiral`: a neural ODE learns a spiral.
"""

import argparse


def script_arguments(doc: str, name: str, argv=None) -> argparse.Namespace:
    """The command line of an example script: ``--quick`` (a few steps, for CI), ``--out DIR`` (where the
    figures go, default ``examples/output/<name>``) and ``--no-progress``."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few training steps only (as in CI)")
    parser.add_argument("--out", default=f"examples/output/{name}", help="output directory for the figures")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser.parse_args(argv)
