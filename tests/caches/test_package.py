"""
The shape of ``preload.caches``: its public names, and no import cycles inside it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import preload.caches

PACKAGE = Path(preload.caches.__file__).parent


def test_all_is_sorted_and_lists_every_public_name() -> None:
    """
    ``__all__`` is sorted and equals the public names the package defines.
    """
    public = sorted(
        name
        for name in vars(preload.caches)
        if not name.startswith("_") and name != "annotations"  # from __future__
    )
    assert sorted(preload.caches.__all__) == preload.caches.__all__
    assert public == preload.caches.__all__


def imports(path: Path) -> set[str]:
    """
    The sibling modules ``path`` imports, at the top or inside a function.
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """
    Every import path that comes back to where it started.
    """
    out: list[list[str]] = []

    def walk(path: list[str]) -> None:
        for nxt in sorted(graph.get(path[-1], ())):
            if nxt == path[0]:
                out.append([*path, nxt])
            elif nxt not in path and nxt > path[0]:  # each cycle once, from its least
                walk([*path, nxt])

    for start in sorted(graph):
        walk([start])
    return out


def test_no_module_imports_one_that_imports_it_back() -> None:
    """
    The modules of the package import each other without cycles (lazy imports
    included): the factory imports the backends, the backends never the factory.
    """
    graph = {
        path.stem: imports(path) - {path.stem}
        for path in sorted(PACKAGE.glob("*.py"))
        if path.stem != "__init__"
    }
    assert [] == cycles(graph)
    assert "_factory" not in graph["_redis"] | graph["_memory"]
    assert "_redis" not in graph["_memory"]
    assert {"_memory", "_redis"} <= graph["_factory"]
