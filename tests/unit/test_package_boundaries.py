"""The package's import graph: no private name crosses a module boundary, no import cycle (issue 14).

ruff's PLC2701 ignores imports inside one package and SLF001 only sees attribute access,
so these rules are checked here on the source itself (every module of ``feedlake``,
``jobs/``, ``notebooks/``, ``bench/`` and ``tests/``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "lib" / "feedlake"
SOURCES = sorted(
    [*PACKAGE.rglob("*.py"), *(ROOT / "jobs").rglob("*.py"), *(ROOT / "bench").rglob("*.py"), *(ROOT / "tests").rglob("*.py")]
)


def feedlake_imports(tree: ast.Module, *, top_level_only: bool) -> list[ast.ImportFrom | ast.Import]:
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    return [
        n for n in nodes
        if (isinstance(n, ast.ImportFrom) and (n.module or "").startswith("feedlake"))
        or (isinstance(n, ast.Import) and any(a.name.startswith("feedlake") for a in n.names))
    ]


def private_imports(source: str) -> list[str]:
    """``from feedlake.x import _name`` and ``import feedlake._x`` anywhere in ``source``.

    >>> private_imports("from feedlake.delta import _join_path, make_engine")
    ['feedlake.delta._join_path']
    >>> private_imports("from feedlake.delta import make_engine")
    []
    """
    found = []
    for node in feedlake_imports(ast.parse(source), top_level_only=False):
        if isinstance(node, ast.ImportFrom):
            found += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_") and a.name != "__version__"]
        else:
            found += [a.name for a in node.names if any(part.startswith("_") for part in a.name.split("."))]
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_name_is_imported_across_modules(path):
    assert private_imports(path.read_text(encoding="utf-8")) == []


def module_graph() -> dict[str, set[str]]:
    """feedlake module → the feedlake modules it imports at module level (what import time resolves)."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(("feedlake", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
        deps = set()
        for node in feedlake_imports(ast.parse(path.read_text(encoding="utf-8")), top_level_only=True):
            deps |= {node.module} if isinstance(node, ast.ImportFrom) else {a.name for a in node.names}
        graph[name] = {d for d in deps if d != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan).

    >>> cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}})
    [['a', 'b']]
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_package_has_no_import_cycle():
    assert cycles(module_graph()) == []
