"""The layers point one way (docs/architecture.md): a test fails when an import points back up.

``runstream`` is the shared base (event format, codecs, config, schema);
``producer``, ``ingest`` and ``query`` stand on it and never on each other;
``ops`` (the CLI and the local stack) stands on all of them; ``bench`` and
``tests`` sit on top and nothing imports them. Every import counts, also one
inside a function (a deferred import is still a dependency).

Inside a package, modules import each other without cycles (imports under
``if TYPE_CHECKING:`` never run and do not count), but for the pairs in
:data:`KNOWN_CYCLES`, each with its reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("runstream", "producer", "ingest", "query", "ops", "bench", "tests")
#: What each layer may import of the project's own packages (itself included).
ALLOWED = {
    "runstream": {"runstream"},
    "producer": {"runstream", "producer"},
    "ingest": {"runstream", "ingest"},
    "query": {"runstream", "query"},
    "ops": {"runstream", "producer", "ingest", "query", "ops"},
    "bench": {"runstream", "producer", "ingest", "query", "ops", "bench", "tests"},
    "tests": set(PACKAGES),
}


#: Cycles kept on purpose: {modules} -> why.
KNOWN_CYCLES = {
    # v1's API has each make the others: Experiment.start_logging() a Run, Run.get()/get_context() an
    # Experiment, Workspace.experiments and get_run() both, and each names its workspace.
    frozenset({"producer._run", "producer._experiment", "producer._workspace"}): "v1's Run, Experiment, Workspace",
}


def _imports(path: Path) -> set[str]:
    """The project packages ``path`` imports (absolute imports; relative ones stay inside the package)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {name.split(".")[0] for name in names} & set(PACKAGES)
    return found


def _modules(package: str) -> list[Path]:
    return [p for p in (ROOT / package).rglob("*.py") if ".venv" not in p.parts]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_points_up_a_layer(package: str) -> None:
    wrong = {
        f"{path.relative_to(ROOT)} imports {sorted(used - ALLOWED[package])}"
        for path in _modules(package)
        if (used := _imports(path)) - ALLOWED[package]
    }
    assert not wrong, sorted(wrong)


def test_the_check_sees_deferred_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from ingest._writer import Writer\n    import query\n")
    assert _imports(module) == {"ingest", "query"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(path: Path, package: str, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``path`` imports when it runs (not those only under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    typing_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for statement in block.body
        for node in ast.walk(statement)
    }
    here = _module_name(path).split(".")
    here = here if path.name == "__init__.py" else here[:-1]
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(here[: len(here) - node.level + 1] + [node.module or ""]) if node.level else node.module
            base = (base or "").strip(".")
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names}
    return found & known


def _cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = {stack.pop()}
            while node not in group:
                group.add(stack.pop())
            if len(group) > 1:
                groups.append(frozenset(group))

    for node in graph:
        if node not in index:
            visit(node)
    return groups


@pytest.mark.parametrize("package", ["runstream", "producer", "ingest", "query", "ops"])
def test_no_import_cycle_inside_a_package(package: str) -> None:
    paths = {_module_name(p): p for p in _modules(package)}
    graph = {name: _runtime_imports(path, package, set(paths)) - {name} for name, path in paths.items()}
    assert [sorted(c) for c in _cycles(graph) if c not in KNOWN_CYCLES] == []


def test_the_cycle_check_sees_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset({"a", "b", "c"})]


def test_query_handlers_import_no_other_handler() -> None:
    """A ``_web_*`` module holds routes; what two of them share lives in a non-handler module."""
    paths = {_module_name(p): p for p in _modules("query")}
    handlers = {name for name in paths if name.startswith("query._web_")}
    edges = {(name, used) for name in handlers for used in _runtime_imports(paths[name], "query", handlers)}
    assert sorted(edges) == []
