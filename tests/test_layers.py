"""No import cycles in ``gateway``: between the packages of a package, nor between its modules.

import-linter's ``acyclic`` contract (pyproject.toml, ``lint-imports``) says the same but names
only the imports that would break a cycle; this test prints each cycle, hop by hop, with the
line of every import in it. The contract's temporary ``ignore_imports`` apply here too, so the
two always agree. Imports under ``if TYPE_CHECKING:`` and inside functions count.
"""

from __future__ import annotations

import tomllib
from collections import defaultdict
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]

Edges = dict[str, dict[str, tuple[str, str]]]  # child -> child -> one (importer, imported)


def ignored_imports() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    return [
        expression
        for contract in contracts
        if contract["type"] == "acyclic_siblings"
        for expression in contract.get("ignore_imports", [])
    ]


def gateway_graph() -> grimp.ImportGraph:
    graph = grimp.build_graph("gateway", cache_dir=None)
    for expression in ignored_imports():
        for found in graph.find_matching_direct_imports(import_expression=expression):
            graph.remove_import(importer=found["importer"], imported=found["imported"])
    return graph


def _child(package: str, module: str) -> str:
    return ".".join(module.split(".")[: package.count(".") + 2])


def sibling_edges(graph: grimp.ImportGraph, package: str) -> Edges:
    """The imports between the children of ``package``, each child standing for all of it."""
    edges: Edges = defaultdict(dict)
    for module in graph.find_descendants(package):
        for imported in graph.find_modules_directly_imported_by(module):
            if not imported.startswith(package + "."):
                continue
            source, target = _child(package, module), _child(package, imported)
            if source != target:
                edges[source].setdefault(target, (module, imported))
    return edges


def _components(edges: Edges) -> list[set[str]]:
    """Strongly connected components of two or more nodes (Tarjan's, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        work.append((node, iter(sorted(edges.get(node, {})))))

    for root in sorted(edges):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = []
        visit(root)
        while work:
            node, targets = work[-1]
            target = next(targets, None)
            if target is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    found.append(_pop_component(stack, on_stack, node))
            elif target not in index:
                visit(target)
            elif target in on_stack:
                low[node] = min(low[node], index[target])
    return [component for component in found if len(component) > 1]


def _pop_component(stack: list[str], on_stack: set[str], root: str) -> set[str]:
    component = set()
    while True:
        member = stack.pop()
        on_stack.discard(member)
        component.add(member)
        if member == root:
            return component


def _cycle_through(edges: Edges, component: set[str]) -> list[str]:
    """A shortest cycle from the component's first node back to it, within the component."""
    start = min(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for target in sorted(edges.get(node, {})):
            if target == start:
                return [*paths[node], start]
            if target in component and target not in paths:
                paths[target] = [*paths[node], target]
                queue.append(target)
    raise AssertionError(f"{sorted(component)} is not strongly connected")


def cycles(graph: grimp.ImportGraph, root: str = "gateway") -> list[str]:
    """Every package's cycles between its children, one line a hop."""
    reports = []
    packages = [root, *sorted(graph.find_descendants(root))]
    for package in packages:
        edges = sibling_edges(graph, package)
        for component in _components(edges):
            hops = _cycle_through(edges, component)
            lines = [f"cycle in {package}: {' -> '.join(hops)}"]
            for source, target in pairwise(hops):
                importer, imported = edges[source][target]
                details = graph.get_import_details(importer=importer, imported=imported)
                where = f"l.{details[0]['line_number']}" if details else "?"
                lines.append(f"    {importer} -> {imported} ({where})")
            reports.append("\n".join(lines))
    return reports


def test_gateway_has_no_import_cycles() -> None:
    found = cycles(gateway_graph())
    assert not found, "import cycles (break them, see docs/architecture.md):\n" + "\n".join(found)


def test_a_cycle_is_found_and_printed_hop_by_hop() -> None:
    graph = grimp.ImportGraph()
    for module in ("app", "app.a", "app.b", "app.b.x", "app.c", "app.d"):
        graph.add_module(module)
    graph.add_import(importer="app.a", imported="app.b.x", line_number=3, line_contents="")
    graph.add_import(importer="app.b.x", imported="app.c", line_number=5, line_contents="")
    graph.add_import(importer="app.c", imported="app.a", line_number=7, line_contents="")
    graph.add_import(importer="app.a", imported="app.d", line_number=9, line_contents="")

    assert cycles(graph, "app") == [
        "cycle in app: app.a -> app.b -> app.c -> app.a\n"
        "    app.a -> app.b.x (l.3)\n"
        "    app.b.x -> app.c (l.5)\n"
        "    app.c -> app.a (l.7)"
    ]


def test_a_cycle_between_modules_inside_a_package_is_its_own() -> None:
    graph = grimp.ImportGraph()
    for module in ("app", "app.p", "app.p.one", "app.p.two", "app.q"):
        graph.add_module(module)
    graph.add_import(importer="app.p.one", imported="app.p.two", line_number=1, line_contents="")
    graph.add_import(importer="app.p.two", imported="app.p.one", line_number=2, line_contents="")
    graph.add_import(importer="app.q", imported="app.p.one", line_number=3, line_contents="")

    assert [report.splitlines()[0] for report in cycles(graph, "app")] == [
        "cycle in app.p: app.p.one -> app.p.two -> app.p.one"
    ]

