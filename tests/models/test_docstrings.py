"""The examples in the docstrings of the SciML layer run and print what they show."""

import doctest
import importlib

import pytest

MODULES = ["sciml.models._neural_ode", "sciml.models._ude", "sciml.losses", "sciml.train", "sciml.discovery",
           "sciml._sparse_regression",  # doctest reads only what a module defines: `stlsq` is re-exported
           "sciml.data"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
