"""The shape of the package, read from its source with `ast` (imports inside functions included): no
import loop between modules, and the single-solve path knows nothing of ensembles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "sciml"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                # `from sciml import _validate` imports that module (and runs the package's __init__ only
                # as Python's machinery, not as a dependency of this module's code)
                for alias in node.names:
                    targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


GRAPH = _graph()


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def _is_package_init_edge(a: str, b: str) -> bool:
    """A package's ``__init__`` re-exporting its own submodules, which import siblings through the
    package: not a loop between modules of different concepts."""
    return a.startswith(b + ".") or b.startswith(a + ".")


def test_the_import_graph_has_no_loop():
    graph = {m: {t for t in ts if not _is_package_init_edge(m, t)} for m, ts in GRAPH.items()}
    assert _cycles(graph) == []


@pytest.mark.parametrize("prefix", ["sciml._solve", "sciml._problem", "sciml._validate", "sciml._integrate",
                                    "sciml.solvers", "sciml.adjoints", "sciml.kernel"])
def test_the_single_solve_path_imports_nothing_from_ensembles(prefix):
    reached, todo = set(), [m for m in GRAPH if m == prefix or m.startswith(prefix + ".") or
                            m.startswith(prefix + "_")]
    assert todo, prefix
    while todo:
        m = todo.pop()
        if m in reached:
            continue
        reached.add(m)
        todo.extend(GRAPH[m])
    assert not [m for m in reached if m.startswith("sciml.ensemble")]
