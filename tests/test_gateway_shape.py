"""The gateway's shape, checked on the source: its modules import each other without a cycle — counting
every import, also those under `if TYPE_CHECKING:` and inside functions."""
from __future__ import annotations

import ast
from collections.abc import Container
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool) -> list[str]:
    """The dotted names an import statement may load: a module, or a module and names from it (last)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = importer.split(".")
        anchor = package[:len(package) - node.level + (1 if is_package else 0)]
        base = ".".join(anchor + ([base] if base else []))
    return [f"{base}.{alias.name}" for alias in node.names] + [base]


def edges(tree: ast.AST, importer: str, is_package: bool, modules: Container[str]) -> set[str]:
    """The modules among `modules` that any import statement anywhere in `tree` loads."""
    found: set[str] = set()
    for node in ast.walk(tree):  # every statement: module level, under `if TYPE_CHECKING:`, inside functions
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        names = imported(node, importer, is_package)
        if isinstance(node, ast.ImportFrom):  # `from a.b import c`: the module a.b.c if there is one, else a.b
            names = [n for n in names[:-1] if n in modules] or names[-1:]
        for target in names:
            while target and target not in modules:  # a name inside a module, or a module outside the package
                target = target.rpartition(".")[0]
            if target and target != importer:
                found.add(target)
    return found


def import_graph(package: str) -> dict[str, set[str]]:
    """Module → the modules of `package` it imports."""
    paths = {module_name(p): p for p in sorted((REPO / package).rglob("*.py"))}
    return {name: edges(ast.parse(path.read_text(encoding="utf-8")), name, path.name == "__init__.py", paths)
            for name, path in paths.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle as a path (first module repeated at the end), or []."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return []

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return []


def test_the_gateway_imports_without_a_cycle() -> None:
    graph = import_graph("gateway")
    assert "gateway.app" in graph and "gateway.call" in graph["gateway.app"]
    cycle = find_cycle(graph)
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_the_graph_sees_type_checking_and_function_imports() -> None:
    """An import under TYPE_CHECKING and one inside a function are edges, and a cycle through them is found."""
    graph = import_graph("gateway")
    source = "if TYPE_CHECKING:\n    from gateway.app import App\n\ndef f():\n    from gateway import call\n"
    found = edges(ast.parse(source), "gateway.webhooks", False, graph)
    assert found == {"gateway.app", "gateway.call"}
    assert find_cycle({**graph, "gateway.webhooks": graph["gateway.webhooks"] | found})
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
