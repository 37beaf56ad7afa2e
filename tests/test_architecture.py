"""The shape of the code: rooms by concern, and data that flows one way (docs/architecture.md).

Every import of Docent's own modules is read from the sources with `ast`, those inside functions
included (an import moved into a function still makes the dependency), and checked against the
layers below: a module may import its own layer and the layers under it, never one above, and
no two modules may import each other, however long the way round.
"""

from __future__ import annotations

import ast
import functools
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ingest", "retrieval", "webapp", "prompts")
COMPILED = {"retrieval.index._engine", "retrieval.index._engine_cuda"}  # built from native/

# Lowest first. A module belongs to the layer of the longest prefix that names it.
LAYERS = (
    ("retrieval.index",),  # the engine's face: imports nothing else of Docent
    ("ingest", "prompts", "retrieval.models", "retrieval.keywords"),  # loaders, text, the data that flows
    ("retrieval.embed", "retrieval.store", "retrieval.distributed"),
    ("ingest.pipeline", "ingest.distributed", "retrieval.search", "retrieval.scope"),
    ("retrieval.answer",),
    ("retrieval.settings", "retrieval.evaluate", "retrieval.answer_eval", "retrieval.service"),
    ("webapp",),  # the app, the HTTP API and the CLI: the outermost layer
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}


def _imports(path: Path, known: set[str]) -> set[str]:
    """Docent's modules that a file imports; `from a.b import c` names a.b.c when c is a module."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module for a in node.names
            ]
        else:
            assert not (isinstance(node, ast.ImportFrom) and node.level), f"{path}: use absolute imports"
            continue
        found.update(name for name in names if name in known)
    return found


@functools.lru_cache(maxsize=1)
def _graph() -> dict[str, set[str]]:
    """The import graph, read in a fresh interpreter: CPython 3.11's AST builder keeps its
    recursion count per interpreter, and a background thread of an earlier test (Ray's, after
    tests/distributed) building ASTs at the same moment makes ast.parse fail with
    "AST constructor recursion depth mismatch" (seen once in CI)."""
    code = (
        f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import test_architecture as t;"
        " print(json.dumps({k: sorted(v) for k, v in t._read_graph().items()}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {module: set(targets) for module, targets in json.loads(out.stdout).items()}


def _read_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules) | COMPILED
    return {name: _imports(path, known) - {name} for name, path in modules.items()} | {name: set() for name in COMPILED}


def _layer(module: str) -> int:
    if module == "retrieval":  # the package's own __init__, which imports nothing
        return 0
    best, best_length = None, -1
    for number, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_length:
                best, best_length = number, len(prefix)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best


def test_every_module_sits_in_a_layer():
    for module in _modules():
        _layer(module)


def test_nothing_imports_a_layer_above_its_own():
    upward = [
        f"{module} (layer {_layer(module)}) imports {target} (layer {_layer(target)})"
        for module, targets in sorted(_graph().items())
        for target in sorted(targets)
        if _layer(target) > _layer(module)
    ]
    assert not upward, "imports that point upward:\n" + "\n".join(upward)


def test_the_engine_face_imports_nothing_else_of_docent():
    outside = {
        f"{module} imports {target}"
        for module, targets in _graph().items()
        if module.startswith("retrieval.index")
        for target in targets
        if not target.startswith("retrieval.index")
    }
    assert not outside, outside


def test_no_import_circles():
    graph = _graph()
    state: dict[str, str] = {}  # "open" while on the current path, "done" after
    circles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                circles.append(" -> ".join(path[path.index(target) :] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_the_checks_see_an_upward_import_and_a_circle(tmp_path, monkeypatch):
    """The walk itself: an import moved into a function is still found."""
    (tmp_path / "retrieval").mkdir()
    (tmp_path / "retrieval" / "store.py").write_text("def f():\n    from webapp import app\n")
    (tmp_path / "webapp").mkdir()
    (tmp_path / "webapp" / "app.py").write_text("import retrieval.store\n")
    known = {"retrieval.store", "webapp.app", "webapp"}
    assert _imports(tmp_path / "retrieval" / "store.py", known) == {"webapp.app"}
    assert _layer("retrieval.store") < _layer("webapp.app")


def test_single_machine_docent_does_not_import_ray(tmp_path):
    """Ray is an optional extra: the app, the API and the CLI load without it."""
    code = "import sys, retrieval.service, webapp.api, webapp.cli; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert out.stdout.strip() == "False"
