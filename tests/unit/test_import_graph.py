"""The first-level parts of ``analogebl`` (``analogebl.X``, a subpackage or a module) import
each other without cycles, apart from the known ones listed below.

Every module is parsed with ``ast`` (nothing is imported), and every import counts: top
level, inside functions, and under ``TYPE_CHECKING``. A lazy import inside a function
hides a cycle from the interpreter, not from the design. The package's own
``__init__.py`` is the public facade (it re-exports from every part) and is not a node.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

ROOT = "analogebl"

#: Cycles still in the package, each as its nodes (``analogebl.X`` -> ``X``) starting from
#: the smallest name: ``("a", "b")`` is a -> b -> a. This set must only shrink: a cycle that
#: is not listed fails the test, and so does a listed one that no longer exists (remove it).
KNOWN_CYCLES: set[tuple[str, ...]] = set()


def _package_dir() -> Path:
    spec = importlib.util.find_spec(ROOT)
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations)))


def _module_name(path: Path, base: Path) -> str:
    parts = list(path.relative_to(base.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _part(module: str) -> str | None:
    """The first-level part ``X`` of ``analogebl.X...``, ``None`` outside it (or the root)."""
    parts = module.split(".")
    if parts[0] != ROOT or len(parts) < 2:
        return None
    return parts[1]


def _imported_modules(tree: ast.AST, module: str, is_package: bool, base: Path):
    """Absolute names of the modules that ``tree`` imports (relative imports resolved)."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                source = ".".join(anchor + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source == ROOT:
                # ``from analogebl import X``: a part when X is one, else the facade
                for alias in node.names:
                    name = alias.name
                    if (base / f"{name}.py").exists() or (base / name / "__init__.py").exists():
                        yield f"{ROOT}.{name}"
            else:
                yield source


def import_graph() -> dict[str, set[str]]:
    """``X -> {Y, ...}``: some module of part ``X`` imports some module of part ``Y``."""
    base = _package_dir()
    graph: dict[str, set[str]] = {}
    for path in sorted(base.rglob("*.py")):
        module = _module_name(path, base)
        src = _part(module)
        if src is None:
            continue
        graph.setdefault(src, set())
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for target in _imported_modules(tree, module, path.name == "__init__.py", base):
            dst = _part(target)
            if dst is not None and dst != src:
                graph[src].add(dst)
    return graph


def elementary_cycles(graph: dict[str, set[str]]) -> set[tuple[str, ...]]:
    """Every simple cycle, as a tuple of nodes starting from its smallest one."""
    cycles: set[tuple[str, ...]] = set()
    for start in sorted(graph):
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph.get(node, ())):
                if nxt == start:
                    cycles.add(tuple(path))
                elif nxt > start and nxt not in path:
                    stack.append((nxt, [*path, nxt]))
    return cycles


def _show(cycle: tuple[str, ...]) -> str:
    return " -> ".join(f"{ROOT}.{n}" for n in (*cycle, cycle[0]))


def test_the_graph_sees_the_package():
    graph = import_graph()
    assert {"backends", "learning", "models", "network", "plan"} <= set(graph)
    assert "backends" in graph["network"]


def test_no_import_cycles_between_first_level_parts():
    cycles = elementary_cycles(import_graph())
    new = sorted(cycles - KNOWN_CYCLES)
    gone = sorted(KNOWN_CYCLES - cycles)
    msg = []
    if new:
        msg.append("new import cycle(s):\n" + "\n".join(f"  {_show(c)}" for c in new))
    if gone:
        msg.append(
            "cycle(s) listed in KNOWN_CYCLES no longer exist; remove them:\n"
            + "\n".join(f"  {_show(c)}" for c in gone)
        )
    assert not msg, "\n".join(msg)


def test_cycle_finder():
    g = {"a": {"b"}, "b": {"a", "c"}, "c": {"d"}, "d": {"b"}, "e": {"a"}}
    assert elementary_cycles(g) == {("a", "b"), ("b", "c", "d")}
