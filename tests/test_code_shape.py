"""The shape of the code, checked on its source: parts composed rather than mixed in, the
RealtimeBridge routing every message from one table, and functions small and simple enough to read."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGES_BOUNDED = ["actors", "gateway", "console"]  # packages whose every function is held to MAX_LINES and MAX_COMPLEXITY
MAX_LINES = 60
MAX_COMPLEXITY = 15

REPO = Path(__file__).resolve().parent.parent
BRANCHES = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.ExceptHandler, ast.With, ast.AsyncWith, ast.Assert, ast.IfExp,
            ast.match_case)
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def modules(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def own_nodes(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.AST]:
    """The function's nodes, without those of the functions defined inside it (measured on their own)."""
    found: list[ast.AST] = []
    pending: list[ast.AST] = list(ast.iter_child_nodes(function))
    while pending:
        node = pending.pop()
        found.append(node)
        if not isinstance(node, FUNCTIONS):
            pending.extend(ast.iter_child_nodes(node))
    return found


def complexity(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """McCabe's number, counted on the tree: 1, plus one for each if/elif, for, while, except, with,
    assert, conditional expression, match case and comprehension condition, and one for each `and`/`or`
    (`a and b and c` is two)."""
    count = 1
    for node in own_nodes(function):
        if isinstance(node, BRANCHES):
            count += 1
        elif isinstance(node, ast.BoolOp):
            count += len(node.values) - 1
        elif isinstance(node, ast.comprehension):
            count += len(node.ifs)
    return count


def oversized(package: str, max_lines: int = MAX_LINES, max_complexity: int = MAX_COMPLEXITY) -> list[str]:
    """Every function of `package` longer than `max_lines` (its def to its last line) or more complex
    than `max_complexity`, as "path:line name: why"."""
    found = []
    for path in modules(package):
        for node in ast.walk(parse(path)):
            if not isinstance(node, FUNCTIONS):
                continue
            where = f"{path.relative_to(REPO)}:{node.lineno} {node.name}"
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines > max_lines:
                found.append(f"{where}: {lines} lines")
            if complexity(node) > max_complexity:
                found.append(f"{where}: complexity {complexity(node)}")
    return found


@pytest.mark.parametrize("package", PACKAGES_BOUNDED)
def test_functions_are_small_and_simple(package: str) -> None:
    assert oversized(package) == []


def test_the_measure_counts_what_it_says() -> None:
    source = '''
def f(x, items):
    if x and x > 1 or not x:
        pass
    elif x:
        for i in items:
            while i:
                i -= 1
    try:
        with open(x):
            assert x
    except ValueError:
        pass
    y = [i for i in items if i if i > 2]
    match x:
        case 1:
            return 1 if y else 2
    def inner(z):
        if z:
            return z
'''
    function = parse_function(source)
    # if, elif, 2 boolean operators, for, while, with, assert, except, 2 comprehension conditions, a case, IfExp
    assert complexity(function) == 1 + 13
    inner = next(n for n in ast.walk(function) if isinstance(n, ast.FunctionDef) and n.name == "inner")
    assert complexity(inner) == 2


def parse_function(source: str) -> ast.FunctionDef:
    node = ast.parse(source).body[0]
    assert isinstance(node, ast.FunctionDef)
    return node


# --------------------------------------------------------------------------- composition, not mixins
def is_interface(node: ast.ClassDef) -> bool:
    """A typing.Protocol or an abc class: the one place a method may be a bare declaration."""
    names = {ast.unparse(base).rsplit(".", 1)[-1] for base in node.bases}
    names |= {ast.unparse(keyword.value).rsplit(".", 1)[-1] for keyword in node.keywords if keyword.arg == "metaclass"}
    return bool(names & {"Protocol", "ABC", "ABCMeta"})


def is_stub(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """The body (its docstring aside) only raises NotImplementedError."""
    body = [stmt for stmt in function.body
            if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str))]
    if len(body) != 1 or not isinstance(body[0], ast.Raise) or body[0].exc is None:
        return False
    raised = body[0].exc.func if isinstance(body[0].exc, ast.Call) else body[0].exc
    return isinstance(raised, ast.Name) and raised.id == "NotImplementedError"


def test_no_mixins_and_no_stubs_resolved_by_the_mro() -> None:
    mixins, stubs = [], []
    for path in modules("actors"):
        for node in ast.walk(parse(path)):
            if not isinstance(node, ast.ClassDef):
                continue
            where = f"{path.relative_to(REPO)}:{node.lineno} {node.name}"
            mixins += [f"{where}({ast.unparse(b)})" for b in node.bases if ast.unparse(b).endswith("Mixin")]
            if node.name.endswith("Mixin"):
                mixins.append(where)
            if not is_interface(node):
                stubs += [f"{where}.{f.name}" for f in node.body if isinstance(f, FUNCTIONS) and is_stub(f)]
    assert mixins == [] and stubs == []


# --------------------------------------------------------------------------- the bridge's one table
BRIDGE_MODULES = sorted((REPO / "actors" / "cores").glob("bridge*.py"))


def routing_tables() -> list[tuple[str, ast.Dict]]:
    """Module-level dicts in the bridge's modules whose keys are all class names: message type → route."""
    tables = []
    for path in BRIDGE_MODULES:
        for stmt in parse(path).body:
            target, value = (stmt.targets[0], stmt.value) if isinstance(stmt, ast.Assign) else \
                (stmt.target, stmt.value) if isinstance(stmt, ast.AnnAssign) else (None, None)
            if isinstance(value, ast.Dict) and value.keys and all(isinstance(k, ast.Name) and k.id[:1].isupper()
                                                                  for k in value.keys) and isinstance(target, ast.Name):
                tables.append((f"{path.name}:{target.id}", value))
    return tables


def test_the_bridge_routes_every_message_from_one_table_that_names_each_type_once() -> None:
    tables = routing_tables()
    assert [name for name, _ in tables] == ["bridge.py:ROUTES"]
    keys = [key.id for key in tables[0][1].keys if isinstance(key, ast.Name)]
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)
    dispatch = []
    for path in BRIDGE_MODULES:
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store) and ast.unparse(node.value) == "ROUTES":
                dispatch.append(f"{path.name}:{node.lineno} changes ROUTES")
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "isinstance" and node.args \
                    and ast.unparse(node.args[0]) in ("msg", "message", "note"):
                dispatch.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    assert dispatch == []


def test_every_route_names_handlers_of_its_part_and_every_note_has_an_owner() -> None:
    import msgspec

    from actors.cores import bridge, bridge_notes
    from actors.cores.bridge_agent import AgentConduct
    from actors.cores.bridge_caller import CallerTurns
    from actors.cores.bridge_link import LinkKeeper
    from actors.cores.bridge_responses import ResponseBook
    from actors.cores.bridge_tools import ToolCalls

    owners = {bridge.Part.LINK: LinkKeeper, bridge.Part.CALLER: CallerTurns, bridge.Part.RESPONSES: ResponseBook,
              bridge.Part.TOOLS: ToolCalls, bridge.Part.CONDUCT: AgentConduct}
    for message_type, route in bridge.ROUTES.items():
        assert route, message_type
        for part, handler in route:
            assert getattr(owners[part], handler.__name__, None) is handler, (message_type, part, handler)
    notes = {value for value in vars(bridge_notes).values()
             if isinstance(value, type) and issubclass(value, msgspec.Struct) and value.__module__ == bridge_notes.__name__}
    assert notes - {bridge_notes.RouteEnd} <= set(bridge.ROUTES)
