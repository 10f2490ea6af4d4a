"""Every layer documents what `init` returns, and every example in the docstrings runs.

A layer's docstring has a `Parameters:` section (and a `State:` section if it has state) with one
line per key: `key: shape` where the shape is an expression in the layer's attributes, optionally
`if condition`; `key: description` for a sub-tree (a sublayer's params; `<i>` stands for an index and `<name>`
for each sublayer's name); or `none`. The test builds every case from `layer_cases.py` and compares
those lines with `init`.
"""

import doctest
import importlib
import inspect
import pkgutil
import re

import jax
import pytest

import sciml.layers
from sciml import layers as L

from .layer_cases import CASES

EXPORTED_LAYER_CLASSES = [getattr(L, name) for name in L.__all__
                          if inspect.isclass(getattr(L, name)) and issubclass(getattr(L, name), L.Layer)
                          and getattr(L, name) is not L.Layer]
DOCUMENTED = [case for case in CASES if type(case.layer) in EXPORTED_LAYER_CLASSES]
LINE = re.compile(r"^    (?P<key>[\w.<>]+): (?P<value>.+)$")


def section(cls, title):
    """The `key: value` lines of the section `title` of `cls`'s docstring, or None if absent."""
    lines = inspect.getdoc(cls).splitlines()
    if f"{title}:" not in lines:
        return None
    body = []
    for line in lines[lines.index(f"{title}:") + 1:]:
        if not line.startswith("    "):
            break
        body.append(line)
    return body


def leaf_paths(tree):
    return {".".join(str(k.key) for k in path): leaf.shape
            for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def check_section(layer, title, tree):
    lines = section(type(layer), title)
    assert lines is not None, f"{type(layer).__name__} has no `{title}:` section"
    namespace = {name: getattr(layer, name) for name in dir(layer) if not name.startswith("_")}
    leaves = leaf_paths(tree)
    if lines == ["    none"]:
        assert leaves == {}, f"{type(layer).__name__} documents no {title.lower()} but init gives {leaves}"
        return
    covered = set()
    for line in lines:
        match = LINE.match(line)
        assert match, f"{type(layer).__name__}.{title}: cannot read {line!r}"
        key, value = match["key"], match["value"]
        value, _, condition = value.partition(" if ")
        present = eval(condition, {}, namespace) if condition else True
        key_pattern = re.escape(key).replace(re.escape("<i>"), r"\d+").replace(
            re.escape("<name>"), "(" + "|".join(map(re.escape, layer.sublayers())) + ")")
        matching = {path for path in leaves if re.match(key_pattern + r"(\..+)?$", path)}
        try:
            shape = eval(value, {}, namespace)
        except (NameError, SyntaxError):
            shape = None  # a description of a sub-tree
        if not present:
            assert not matching, f"{type(layer).__name__}: {key} should be absent ({condition} is False)"
            continue
        if isinstance(shape, tuple):
            assert key in leaves, f"{type(layer).__name__}: documented {key} is not in init's {title.lower()}"
            assert leaves[key] == shape, \
                f"{type(layer).__name__}: {key} has shape {leaves[key]}, documented {shape}"
            covered.add(key)
        else:
            assert matching or not leaves, \
                f"{type(layer).__name__}: documented {key} is not in init's {title.lower()}"
            covered |= matching
    assert covered == set(leaves), f"{type(layer).__name__}: undocumented {sorted(set(leaves) - covered)}"


@pytest.mark.parametrize("case", DOCUMENTED, ids=[case.name for case in DOCUMENTED])
def test_parameters_section_matches_init(case):
    params, state = jax.eval_shape(case.layer.init, jax.random.key(0))
    check_section(case.layer, "Parameters", params)
    if case.layer.has_state() or section(type(case.layer), "State") is not None:
        check_section(case.layer, "State", state)


@pytest.mark.parametrize("layer", [L.Dense(2, 3, use_bias=False), L.LayerNorm(3, affine=False),
                                   L.BatchNorm(2, affine=False), L.Scale((2, 3), use_bias=False),
                                   L.MultiHeadAttention(6, 3, head_dim=4, use_bias=False)],
                         ids=lambda layer: layer.describe())
def test_conditional_keys_are_documented(layer):
    params, _ = jax.eval_shape(layer.init, jax.random.key(0))
    check_section(layer, "Parameters", params)


def test_every_exported_layer_has_a_case():
    assert {type(case.layer) for case in CASES} >= set(EXPORTED_LAYER_CLASSES)


@pytest.mark.parametrize("name", L.__all__)
def test_every_export_has_a_runnable_example(name):
    assert ">>>" in (inspect.getdoc(getattr(L, name)) or ""), f"sciml.layers.{name} has no Example"


def test_docstring_examples_run():
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    modules = [importlib.import_module(f"sciml.layers.{info.name}")
               for info in pkgutil.iter_modules(sciml.layers.__path__)]
    examples = 0
    for module in [sciml.layers] + modules:
        for test in finder.find(module):
            examples += len(test.examples)
            runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.failed == 0 and examples > 40
