"""Count the import cycles inside the asgikit package; exit 1 if there are any.

Every ``import asgikit...`` and ``from asgikit... import ...`` counts, wherever
it is written: at module level, inside a function, or under ``TYPE_CHECKING``
(a type-only import is still a dependency a reader has to follow).  Relative
imports are resolved against the importing module.  ``from asgikit.x import
name`` is an edge to ``asgikit.x``, and also to ``asgikit.x.name`` when that
is a submodule.  Importing ``asgikit.x.y`` is not counted as an edge to the
parent packages: they are namespaces, and ``asgikit/__init__.py`` loads its
names lazily.

A cycle is a strongly connected component of the import graph with more
than one module, or a module that imports itself.  Each is printed with one
import path that closes it, so the edge to cut is visible::

    python scripts/import_cycles.py [PACKAGE_DIR]
"""

from __future__ import annotations

import ast
import itertools
import sys
from pathlib import Path

ROOT = "asgikit"


def module_names(package_dir: Path) -> dict[str, Path]:
    """Map each module's dotted name to its file."""
    modules: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _absolute(module: str, is_package: bool, level: int, target: str | None) -> str:
    """Resolve ``from <level dots><target> import`` written in ``module``."""
    if level == 0:
        return target or ""
    base = module.split(".")
    if not is_package:
        base.pop()
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, target] if target else base)


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> dict[str, int]:
    """The asgikit modules ``module`` imports, each with the line of its first import."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_package = path.name == "__init__.py"
    found: dict[str, int] = {}

    def add(name: str, line: int) -> None:
        if name in modules:
            found.setdefault(name, line)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == ROOT or alias.name.startswith(ROOT + "."):
                    add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(module, is_package, node.level, node.module)
            if target != ROOT and not target.startswith(ROOT + "."):
                continue
            add(target, node.lineno)
            for alias in node.names:
                add(f"{target}.{alias.name}", node.lineno)
    return found


def graph(package_dir: Path) -> tuple[dict[str, dict[str, int]], dict[str, Path]]:
    """The import graph: module -> {imported module: line}."""
    modules = module_names(package_dir)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}, modules


def components(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components (Tarjan, iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    result: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work: list[tuple[str, list[str]]] = [(start, sorted(edges[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, pending = work[-1]
            if pending:
                nxt = pending.pop(0)
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(edges[nxt])))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                members = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    members.append(member)
                    if member == node:
                        break
                result.append(sorted(members))
    return result


def closing_path(edges: dict[str, dict[str, int]], members: list[str]) -> list[str]:
    """A shortest path from the first member back to itself, inside the component."""
    inside = set(members)
    start = members[0]
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(edges[node]):
                if nxt not in inside:
                    continue
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if nxt not in previous:
                    previous[nxt] = node
                    following.append(nxt)
        frontier = following
    return [start]


def cycles(package_dir: Path) -> list[tuple[list[str], list[str]]]:
    """Each cycle: its modules and one import path that closes it."""
    edges, _ = graph(package_dir)
    found = []
    for members in components(edges):
        if len(members) > 1 or members[0] in edges[members[0]]:
            found.append((members, closing_path(edges, members)))
    return found


def main(argv: list[str]) -> int:
    package_dir = Path(argv[1]) if len(argv) > 1 else Path(__file__).parent.parent / ROOT
    edges, modules = graph(package_dir)
    found = cycles(package_dir)
    for number, (members, path) in enumerate(found, 1):
        print(f"cycle {number}: {len(members)} modules: {', '.join(members)}")
        for here, there in itertools.pairwise(path):
            line = edges[here][there]
            where = modules[here].relative_to(package_dir.parent)
            print(f"    {here} -> {there}  ({where}:{line})")
    print(f"{len(found)} import cycle(s) among {len(modules)} modules")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
