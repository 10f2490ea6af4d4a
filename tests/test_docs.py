"""The documentation builds without a warning, and every example in the guide pages runs.

`mkdocs build --strict` turns every warning into an error: a broken link, a page missing from `nav`, a
docstring that mkdocstrings cannot render. Each ```python block of a guide page (docs/*.md; the API
pages under docs/api/ are generated from docstrings, whose examples are doctests) runs in a fresh
interpreter, in order, sharing one namespace per page, so the guides cannot drift from the code.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDES = sorted((ROOT / "docs").glob("*.md"))
_PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)

# Runs the blocks of one page; line numbers in a traceback are those of the Markdown file.
_RUNNER = """
import json, sys
page, blocks = json.loads(sys.stdin.read())
namespace = {"__name__": "__docs__"}
for line, code in blocks:
    exec(compile("\\n" * (line - 1) + code, page, "exec"), namespace)
"""


def _environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "SCIML_X64"}  # the documented default
    env["NO_MKDOCS_2_WARNING"] = "1"
    return env


def test_mkdocs_build_strict_succeeds(tmp_path):
    missing = [name for name in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")
               if importlib.util.find_spec(name.split(".")[0]) is None]
    if missing:
        pytest.skip(f"the docs tools are not installed ({', '.join(missing)}): "
                    f"`pip install -e '.[docs]'` to build the documentation")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, env=_environment(), timeout=300,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"`mkdocs build --strict` failed:\n{log}"
    assert (tmp_path / "site" / "api" / "layers" / "index.html").exists()


def test_every_guide_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in GUIDES:
        assert f" {page.name}" in nav, f"docs/{page.name} is not listed in `nav` in mkdocs.yml"


@pytest.mark.parametrize("page", GUIDES, ids=[page.name for page in GUIDES])
def test_guide_examples_run(page):
    text = page.read_text()
    blocks = [(text[:match.start(1)].count("\n") + 1, match[1]) for match in _PYTHON_BLOCK.finditer(text)]
    if not blocks:
        pytest.skip(f"docs/{page.name} has no ```python blocks")
    result = subprocess.run(
        [sys.executable, "-c", _RUNNER], input=json.dumps([f"docs/{page.name}", blocks]),
        cwd=ROOT, capture_output=True, text=True, env=_environment(), timeout=600,
    )
    assert result.returncode == 0, f"an example in docs/{page.name} failed:\n{result.stderr}"


def test_every_promise_in_reliability_md_names_a_test_that_exists():
    """docs/reliability.md names the test behind each promise; a renamed or deleted test breaks it."""
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", (ROOT / "docs" / "reliability.md").read_text())
    assert len(named) >= 15
    missing = [f"{path}::{name}" for path, name in named if f"def {name}(" not in (ROOT / path).read_text()]
    assert missing == []
