"""The package's import graph stays a maintainer can hold: no cycle, and at most 10 layers.

Nodes are the package's top-level modules and its folders (a folder is one node: ``pytest_kick/judge/``); an
edge is any import of the package's own code from one node into another, at module level or inside a
function (a lazy import still ties the two). Layers are the longest chain of edges, counted in nodes.
``python tests/test_layers.py [ROOT]`` prints the figures for a checkout.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_LAYERS = 10


def graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Node -> the nodes it imports (the package's own code only)."""
    package = root / "pytest_kick"
    folders = {p.name for p in package.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    edges: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        own = relative.parts[0] + "/" if relative.parts[0] in folders else relative.stem
        if own == "__init__":
            continue  # the package's face: it imports nothing of its own
        edges.setdefault(own, set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                if not name.startswith("pytest_kick."):
                    continue
                first = name.split(".")[1]
                target = first + "/" if first in folders else first
                if (package / f"{first}.py").is_file() or first in folders:
                    if target != own:
                        edges[own].add(target)
    return edges


def module_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (any import, lazy ones too): a loop inside a folder shows here."""
    package = root / "pytest_kick"
    names = {
        ".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__") for p in package.rglob("*.py")
    }
    edges: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        own = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        found = edges.setdefault(own, set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [
                    f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in names else node.module for a in node.names
                ]
            else:
                continue
            found.update(t for t in targets if t in names and t != own and not own.startswith(t + "."))
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one node (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def layers(edges: dict[str, set[str]]) -> int:
    """The longest chain of imports, in nodes (edges inside a cycle are not followed twice)."""
    depth: dict[str, int] = {}

    def walk(v, seen):
        if v in depth:
            return depth[v]
        below = [walk(w, seen | {v}) for w in edges.get(v, ()) if w not in seen and w != v]
        depth[v] = 1 + max(below, default=0)
        return depth[v]

    return max((walk(v, frozenset()) for v in edges), default=0)


def test_the_package_has_no_import_cycle():
    assert cycles(graph()) == []
    assert cycles(module_graph()) == []  # nor between two modules of one folder


def test_the_package_stands_on_at_most_ten_layers():
    assert layers(graph()) <= MAX_LAYERS


def test_the_counter_sees_a_cycle_and_a_chain():
    assert cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
    assert layers({"a": {"b"}, "b": {"c"}, "c": set(), "d": {"c"}}) == 3


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT
    found, modules = graph(root), module_graph(root)
    print(
        f"nodes {len(found)}, edges {sum(len(v) for v in found.values())}, layers {layers(found)}, "
        f"cycles {len(cycles(found))}; cycles between two modules {cycles(modules)}"
    )
