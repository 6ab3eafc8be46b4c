"""The layers point one way (docs/architecture.md): a test fails when an import points back up.

``runstream`` is the shared base (event format, codecs, config, schema);
``producer``, ``ingest`` and ``query`` stand on it and never on each other;
``ops`` (the CLI and the local stack) stands on all of them; ``bench`` and
``tests`` sit on top and nothing imports them. Every import counts, also one
inside a function (a deferred import is still a dependency).
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
