"""Griffe extension for the API pages: renders sciml's docstring sections.

sciml's docstrings are Google style (``Args:``, ``Returns:``, ``Raises:``) with three sections of the
house style (STYLE.md) that griffe would misread:

* ``Example:`` — griffe knows only ``Examples:``; without it the doctest is rendered as prose.
* ``Parameters:`` and ``State:`` in a layer's docstring list the keys and shapes of the trees that
  ``init`` returns, not function arguments (those are ``Args:``); griffe would take ``Parameters:``
  for arguments and warn that ``weight`` is not in the signature.

Docstrings also use Sphinx roles (``:func:`load```), which Markdown would print as they are.

Before parsing, ``Example:`` becomes ``Examples:``, each ``Parameters:`` / ``State:`` section becomes a
bold heading over a bullet list, and a Sphinx role becomes inline code. Loaded from ``mkdocs.yml``
(mkdocstrings ``extensions``).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_TITLE = re.compile(r"^(Example|Parameters|State):\s*$")
_ROLE = re.compile(r":(?:func|class|meth|mod|attr|obj|exc|data):`~?([^`]+)`")
_HEADINGS = {
    "Parameters": "Parameters (the params tree `init` returns)",
    "State": "State (the state tree `init` returns and `apply` updates)",
}


class SciMLDocstrings(griffe.Extension):
    """Rewrite sciml's house sections into Markdown that griffe renders as intended."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj.docstring.value)


def rewrite(text: str) -> str:
    """Rewrite the house sections of one (dedented) docstring."""
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        match = _TITLE.match(lines[i])
        i += 1
        if match is None:
            out.append(lines[i - 1])
        elif match[1] == "Example":
            out.append("Examples:")
        else:
            body = []
            while i < len(lines) and (lines[i].startswith(" ") or not lines[i].strip()):
                body.append(lines[i])
                i += 1
            out += [f"**{_HEADINGS[match[1]]}**", "", *_bullets(body), ""]
    return _ROLE.sub(r"`\1`", "\n".join(out))


def _bullets(body: list[str]) -> list[str]:
    """``name: description`` items (continuation lines indented deeper) as a Markdown list."""
    items: list[str] = []
    indent = min((len(line) - len(line.lstrip()) for line in body if line.strip()), default=0)
    for line in body:
        if not line.strip():
            continue
        if len(line) - len(line.lstrip()) > indent and items:
            items[-1] += " " + line.strip()
            continue
        name, colon, description = line.strip().partition(":")
        items.append(f"- `{name}`: {description.strip()}" if colon else f"- {name}")
    return items
