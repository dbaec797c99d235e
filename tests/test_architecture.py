"""The package's shape, read from its source: imports form no cycle, modules meet at public names only, nothing
heavy is imported at module level, files and functions stay small, and docs/architecture.md names every module."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PACKAGE = ROOT / "labkit"
HEAVY = ("torch", "diffusers", "transformers", "peft", "accelerate", "safetensors.torch", "torchsde", "scipy",
         "matplotlib", "papermill", "ray")
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def trees() -> dict:
    return {name: ast.parse(path.read_text(), str(path)) for name, path in MODULES.items()}


def imported(name: str, node) -> list[str]:
    """The labkit modules an import statement in module `name` refers to."""
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
        base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
        module = ".".join(base + ([node.module] if node.module else []))
        targets = [f"{module}.{alias.name}" if f"{module}.{alias.name}" in MODULES else module
                   for alias in node.names]
    found = []
    for target in targets:
        while target and target not in MODULES:
            target = target.rpartition(".")[0]
        if target.startswith("labkit"):
            found.append(target)
    return found


def import_graph() -> dict:
    """{module: labkit modules it imports anywhere (module level or inside functions)}."""
    graph = {}
    for name, tree in trees().items():
        edges = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges.update(m for m in imported(name, node) if m != name)
        graph[name] = edges
    return graph


def cycle(graph: dict) -> list | None:
    """One cycle of the graph as a list of modules, or None (iterative depth-first search)."""
    state = {}
    for start in graph:
        if start in state:
            continue
        path = [(start, iter(sorted(graph[start])))]
        state[start] = "open"
        while path:
            node, children = path[-1]
            child = next(children, None)
            if child is None:
                state[node] = "done"
                path.pop()
            elif state.get(child) == "open":
                names = [n for n, _ in path]
                return names[names.index(child):] + [child]
            elif child not in state:
                state[child] = "open"
                path.append((child, iter(sorted(graph[child]))))
    return None


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    graph.pop("labkit")  # the package facade re-exports names; nothing inside labkit imports it (next test)
    assert cycle({m: edges - {"labkit"} for m, edges in graph.items()}) is None


def test_no_module_imports_the_package_facade():
    users = sorted(m for m, edges in import_graph().items() if "labkit" in edges and m != "labkit")
    assert users == [], "import the module that defines a name, not `labkit` itself"


def test_the_cycle_finder_finds_a_cycle():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


def private_imports() -> list[str]:
    """`from labkit.x import _y` and `x._y` on an imported labkit module, anywhere in the package."""
    found = []
    for name, tree in trees().items():
        modules = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and imported(name, node):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append(f"{name}:{node.lineno} imports {alias.name}")
                    if f"{imported(name, node)[0]}.{alias.name}" in MODULES or alias.name in MODULES:
                        modules.add(alias.asname or alias.name)
            if isinstance(node, ast.Import):
                modules.update(alias.asname or alias.name for alias in node.names if alias.name.startswith("labkit"))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                found.append(f"{name}:{node.lineno} uses {node.value.id}.{node.attr}")
    return found


def test_modules_meet_at_public_names_only():
    assert private_imports() == []


def top_level_imports(tree) -> list[str]:
    """Modules imported when the file is imported: module level, class bodies, and `if`/`try` blocks there."""
    names, pending = [], list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names.append(node.module or "")
        elif isinstance(node, (ast.If, ast.Try, ast.ClassDef, ast.With)):
            pending += [n for field in ("body", "orelse", "finalbody", "handlers") for n in getattr(node, field, [])]
        elif isinstance(node, ast.ExceptHandler):
            pending += node.body
    return names


def test_nothing_heavy_is_imported_at_module_level():
    heavy = {name: [m for m in top_level_imports(tree) if m.split(".")[0] in HEAVY or m in HEAVY]
             for name, tree in trees().items()}
    assert {name: found for name, found in heavy.items() if found} == {}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_files_and_functions_stay_small(name):
    source = MODULES[name].read_text()
    lines = source.count("\n")
    assert lines <= MAX_FILE_LINES, f"{name} has {lines} lines: split the file by idea"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == [], f"{name}: split these functions"


def test_architecture_page_names_every_module():
    page = (ROOT / "docs" / "architecture.md").read_text()
    listed = set(re.findall(r"`(labkit(?:\.\w+)*)`", page))
    missing, stale = sorted(set(MODULES) - listed), sorted(m for m in listed if m not in MODULES)
    assert (missing, stale) == ([], []), "docs/architecture.md must list each module (and no removed one)"
