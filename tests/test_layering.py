"""The package layering of ARCHITECTURE.md holds: read from the source with ``ast``, no import.

Three rules, each checked over every ``import`` in ``src/clm`` (function-level ones included,
since an import moved into a function to dodge a cycle is still a dependency):

1. a package imports only packages at its own level or below (the table in ARCHITECTURE.md);
2. nobody imports another package's private (``_``-prefixed) module or name;
3. the modules of ``clm.analytics`` import each other without a cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src" / "clm"

# The ARCHITECTURE table, bottom up: a package may import those on its own line or below.
# ``predict`` is pure maths and imports nothing of ours (checked apart).
LAYERS: list[set[str]] = [
    {"errors", "_runtime"},
    {"config"},
    {"store"},
    {"ingest", "predict"},
    {"lifecycle"},
    {"analytics"},
    {"engage"},
    {"predictions"},
    {"accounts", "privacy"},
    {"worker"},
    {"api", "client"},
    {"web"},
    {"demo"},
    {"cli", "__main__", "__init__"},
]
LEVEL = {package: level for level, packages in enumerate(LAYERS) for package in packages}

# Upward imports that exist today, each with its reason; the test fails when one is gone (so
# the entry is removed) and for any new one.
KNOWN_UPWARD = {
    # The customer list shows the stored prediction scores and needs their event name.
    ("lifecycle", "predictions"),
    # The outbox worker also runs the retention purge as a periodic task.
    ("engage", "privacy"),
}


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


def _imports(path: Path) -> Iterator[tuple[str, list[str]]]:
    """``(module, names)`` for every absolute import of ours in the file."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == "clm":
                yield node.module, [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "clm":
                    yield alias.name, []


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


IMPORTS = [(name, target, names) for name, path in _modules() for target, names in _imports(path)]


def test_every_package_has_a_level() -> None:
    packages = {_package(name) for name, _ in _modules()}
    assert packages - set(LEVEL) == set(), "add the new package to LAYERS (and ARCHITECTURE.md)"


def test_no_package_imports_a_higher_one() -> None:
    upward = {
        (_package(source), _package(target))
        for source, target, _ in IMPORTS
        if LEVEL[_package(target)] > LEVEL[_package(source)]
    }
    assert upward == KNOWN_UPWARD


def test_predict_imports_nothing_of_ours() -> None:
    assert [
        (source, target)
        for source, target, _ in IMPORTS
        if _package(source) == "predict" and _package(target) != "predict"
    ] == []


def _private_module(module: str) -> str | None:
    """The ``clm.x._y`` prefix of a private module, or None."""
    parts = module.split(".")
    for i, part in enumerate(parts[2:], start=2):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[: i + 1])
    return None


def _owner(module: str) -> str:
    """The package a private module or name belongs to (``clm.x._y`` -> ``clm.x``)."""
    return module.rsplit(".", 1)[0]


def test_no_import_of_another_package_private_module() -> None:
    reaches = []
    for source, target, _ in IMPORTS:
        private = _private_module(target)
        if private is not None and not (source + ".").startswith(_owner(private) + "."):
            reaches.append((source, target))
    assert reaches == []


def test_no_import_of_a_private_name_from_another_package() -> None:
    reaches = [
        (source, target, name)
        for source, target, names in IMPORTS
        for name in names
        if name.startswith("_")
        and not name.startswith("__")
        and _package(source) != _package(target)
    ]
    assert reaches == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("package", ["analytics"])
def test_no_import_cycle_among_modules(package: str) -> None:
    prefix = f"clm.{package}."
    modules = {name for name, _ in _modules() if name.startswith(prefix)}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for source, target, names in IMPORTS:
        if source not in modules or source.endswith(".__init__"):
            continue
        # ``from clm.analytics import rfm`` names a module; ``from clm.analytics.rfm import x``
        # names one; the package's own __init__ is the surface, not a module of the cycle.
        candidates = [f"{target}.{name}" for name in names] + [target]
        graph[source] |= {c for c in candidates if c in modules and c != source}
    assert _cycles(graph) == []
