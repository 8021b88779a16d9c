"""The package's shape stays what docs/ARCHITECTURE.md says: imports run one way.

An AST walk over every ``labkit`` module (no import executed) builds the import graph - function-local
imports included, relative imports (``from . import x``, ``from ..io import y``) resolved, and an import
of ``labkit.a.b`` also counted as one of the package ``labkit.a`` it runs first - and checks that:

* there is no import cycle between labkit modules;
* every module sits in the layer table below (the one docs/ARCHITECTURE.md shows) and imports only
  from lower layers, or from its own package (``labkit.data.kws`` -> ``labkit.data.synth``);
* no labkit-internal import hides inside a function (only heavy third-party packages may be imported
  there, e.g. TensorFlow);
* no module is longer than :data:`MAX_LINES` lines.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "labkit"
MAX_LINES = 700

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("labkit", "labkit.config", "labkit.io", "labkit.metrics", "labkit.bench", "labkit.graph",
                    "labkit.models", "labkit.tflm_probe")),
    ("data and results", ("labkit.results", "labkit.studies", "labkit.colab", "labkit.model_cache", "labkit.data",
                          "labkit.data.*")),
    ("features, cost, TFLite", ("labkit.features", "labkit.augment", "labkit.estimate", "labkit.tflite",
                                "labkit.tflite.*")),
    ("training", ("labkit.train",)),
    ("tasks", ("labkit.tasks",)),
    ("techniques", ("labkit.quantize", "labkit.quantize.*", "labkit.prune")),
    ("search", ("labkit.search",)),
    ("lessons", ("labkit.experiments", "labkit.experiments.*", "labkit.system")),
    ("figures", ("labkit.plots",)),
    ("notebook glue", ("labkit.widgets", "labkit.session")),
    ("report parts", ("labkit.manifest", "labkit.pagecheck", "labkit.report_pages")),
    ("report index", ("labkit.report_index",)),
    ("report", ("labkit.report",)),
    ("course mode", ("labkit.course", "labkit.course.*")),
    ("command line", ("labkit.cli",)),
]
"""Layers from the bottom up: a module may import modules of lower layers and of its own package."""


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def _resolve(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The labkit modules an import statement of ``module`` loads (empty for third-party imports)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
        return [n for n in names if n == "labkit" or n.startswith("labkit.")]
    if node.level:
        package = module if _is_package(module) else module.rsplit(".", 1)[0]
        for _ in range(node.level - 1):
            package = package.rsplit(".", 1)[0]
        base = f"{package}.{node.module}" if node.module else package
    else:
        base = node.module or ""
    if base != "labkit" and not base.startswith("labkit."):
        return []
    out = [base]
    out += [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]
    return out


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _imports(module: str) -> tuple[set[str], list[str]]:
    """(labkit modules imported by ``module``, descriptions of labkit imports inside functions)."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    targets: set[str] = set()
    local: list[str] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found = _resolve(module, child)
                if found and inside:
                    local.append(f"{module}:{child.lineno} imports {', '.join(found)} inside a function")
                for target in found:
                    # importing labkit.a.b runs the package labkit.a first, unless the importer is inside it
                    for t in [*_ancestors(target), target]:
                        if t != "labkit" and t not in _ancestors(module):
                            targets.add(t)
            visit(child, inside)

    visit(tree, False)
    targets.discard(module)
    return {t for t in targets if t in MODULES}, local


GRAPH: dict[str, set[str]] = {}
LOCAL: list[str] = []
for _name in MODULES:
    GRAPH[_name], _local = _imports(_name)
    LOCAL.extend(_local)


def _layer(name: str) -> int:
    for i, (_, patterns) in enumerate(LAYERS):
        for pattern in patterns:
            if name == pattern or (pattern.endswith(".*") and name.startswith(pattern[:-1])):
                return i
    raise KeyError(name)


def _subpackage(name: str) -> str | None:
    """The labkit subpackage a module belongs to (``labkit.data`` for ``labkit.data.kws``), or None."""
    top = ".".join(name.split(".")[:2])
    return top if _is_package(top) and top != "labkit" else None


def test_the_walk_sees_the_package():
    # a sanity check of the walker itself: these edges exist in the code
    assert {"labkit.data.synth", "labkit.data.splits"} <= GRAPH["labkit.data.kws"]
    assert "labkit.tflite.files" in GRAPH["labkit.tflite.converter"]
    assert "labkit.data" in GRAPH["labkit.tflite.converter"]        # via labkit.data.splits
    assert {"labkit.train", "labkit.tflite"} <= GRAPH["labkit.tasks"]
    assert len(MODULES) > 30


def test_no_import_cycle():
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                dfs(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            dfs(name)


def test_every_module_has_a_layer():
    missing = [name for name in MODULES if not _in_table(name)]
    assert not missing, f"add these modules to the layer table (here and in docs/ARCHITECTURE.md): {missing}"


def _in_table(name: str) -> bool:
    try:
        _layer(name)
    except KeyError:
        return False
    return True


def test_imports_only_go_down_the_layers():
    wrong = []
    for name, targets in GRAPH.items():
        for target in targets:
            same_package = _subpackage(name) is not None and _subpackage(name) == _subpackage(target)
            if not same_package and _layer(target) >= _layer(name):
                wrong.append(f"{name} ({LAYERS[_layer(name)][0]}) imports {target} ({LAYERS[_layer(target)][0]})")
    assert not wrong, "imports against the layers of docs/ARCHITECTURE.md:\n" + "\n".join(sorted(wrong))


def test_no_labkit_import_inside_a_function():
    assert not LOCAL, "move these imports to the top of the module:\n" + "\n".join(LOCAL)


def test_no_module_is_longer_than_the_limit():
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules (over {MAX_LINES} lines): {long}"


def test_architecture_doc_lists_every_layer():
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    for title, patterns in LAYERS:
        assert title in doc, f"docs/ARCHITECTURE.md does not name the layer {title!r}"
        for pattern in patterns:
            short = pattern.replace("labkit.", "", 1).replace(".*", "/").replace(".", "/")
            if pattern != "labkit":
                assert short.rstrip("/") in doc, f"docs/ARCHITECTURE.md does not place {pattern}"
