"""``print(model)``: the layer tree with parameter shapes and counts.

Shapes come from ``jax.eval_shape`` of ``init``, so printing a model allocates none of its
parameters, however large.
"""

from __future__ import annotations

from typing import Any

import jax

from sciml.layers._params import count


def summary(layer) -> str:
    """The tree of ``layer`` and its sublayers, one line each, with parameter shapes and counts."""
    params, state = jax.eval_shape(layer.init, jax.random.key(0))
    rows: list[tuple[str, str]] = []
    _walk(layer, params, state, "", "", None, rows)
    width = max(len(label) for label, _ in rows)
    lines = [f"{label.ljust(width)}  # {comment}" for label, comment in rows]
    n_state = count(state)
    state_note = f", plus {n_state:,} state entries" if n_state else ""
    lines.append(f"Total: {count(params):,} parameters{state_note}.")
    return "\n".join(lines)


def _walk(layer, params: Any, state: Any, first: str, rest: str, name: str | None,
          rows: list[tuple[str, str]]) -> None:
    sublayers = layer.sublayers()
    label = first + (f"{name}: " if name else "") + layer.describe()
    comment = f"{count(params):,} params"
    own_params = _own_leaves(params, sublayers)
    if own_params:
        comment += ": " + own_params
    own_state = _own_leaves(state, sublayers)
    if own_state:
        comment += "; state: " + own_state
    rows.append((label, comment))
    for i, (child_name, child) in enumerate(sublayers.items()):
        last = i == len(sublayers) - 1
        branch, indent = ("└── ", "    ") if last else ("├── ", "│   ")
        _walk(child, _get(params, child_name), _get(state, child_name), rest + branch, rest + indent,
              child_name, rows)


def _get(tree: Any, key: str) -> Any:
    return tree.get(key, {}) if isinstance(tree, dict) else {}


def _own_leaves(tree: Any, sublayers: dict) -> str:
    """``"weight (2, 3), bias (3,)"`` for the leaves of ``tree`` that belong to no sublayer."""
    if not isinstance(tree, dict):
        return ""
    parts = []
    for key, subtree in tree.items():
        if key in sublayers:
            continue
        for path, leaf in jax.tree_util.tree_leaves_with_path(subtree):
            parts.append(f"{'.'.join([str(key)] + [_key_name(k) for k in path])} {tuple(leaf.shape)}")
    return ", ".join(parts)


def _key_name(key) -> str:
    return str(getattr(key, "key", getattr(key, "idx", key)))
