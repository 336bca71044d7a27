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

    >>> private_imports("from feedlake.delta.engines import _join_path, make_engine")
    ['feedlake.delta.engines._join_path']
    >>> private_imports("from feedlake.delta.engines import make_engine")
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


# The layers, bottom to top (lib/feedlake/<layer>/): a module imports only its own layer and those below.
LAYERS = ("settings", "rules", "landing", "delta", "streams", "ingest", "derived", "quality", "erasure", "export", "app")


def layer_of(module: str) -> str | None:
    """The layer of a dotted feedlake module name (``None`` for the package root and ``feedlake.conf``).

    >>> layer_of("feedlake.ingest.stages"), layer_of("feedlake"), layer_of("feedlake.conf")
    ('ingest', None, None)
    """
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def upward_imports() -> list[str]:
    """Every import (module level or inside a function) of a module from a layer above its own."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(("feedlake", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
        mine = layer_of(name)
        if mine is None:
            continue
        for node in feedlake_imports(ast.parse(path.read_text(encoding="utf-8")), top_level_only=False):
            targets = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            for target in targets:
                theirs = layer_of(target)
                if theirs is None or LAYERS.index(theirs) > LAYERS.index(mine):
                    found.append(f"{name} (layer {mine}) imports {target}")
    return sorted(found)


def test_every_module_lives_in_a_layer():
    flat = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert flat == [], "modules belong in a layer subpackage (lib/feedlake/<layer>/)"
    assert sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()) == sorted(LAYERS)


def test_no_module_imports_a_layer_above_its_own():
    assert upward_imports() == []


def test_the_public_api_resolves_every_name_it_lists():
    import feedlake

    assert sorted(name for name in feedlake.__all__ if getattr(feedlake, name) is None) == []
    assert set(feedlake.__all__) <= set(dir(feedlake))


def unresolved_imports(paths) -> list[str]:
    """``from feedlake.x import y`` statements (inside functions too) whose module or name does not exist."""
    import importlib

    found = []
    for path in paths:
        for node in feedlake_imports(ast.parse(path.read_text(encoding="utf-8")), top_level_only=False):
            if not isinstance(node, ast.ImportFrom):
                continue
            module = importlib.import_module(node.module)
            for alias in node.names:
                submodule = hasattr(module, "__path__") and importlib.util.find_spec(f"{node.module}.{alias.name}") is not None
                if not hasattr(module, alias.name) and not submodule:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: from {node.module} import {alias.name}")
    return found


def test_every_import_of_feedlake_resolves_even_inside_functions():
    """Lazy imports run only on the paths that need them (S3, erasure): each is checked here without running them."""
    assert unresolved_imports(SOURCES) == []


def test_ruff_finds_nothing():
    """The lint rules of pyproject.toml (private names across modules: PLC2701, SLF001; imports sorted) hold in CI."""
    import shutil
    import subprocess

    ruff = shutil.which("ruff")
    assert ruff is not None, "ruff is pinned in requirements.txt"
    done = subprocess.run([ruff, "check", "lib", "tests", "jobs", "bench", "notebooks"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
