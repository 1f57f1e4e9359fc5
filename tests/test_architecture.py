"""The import graph is the architecture: no cycles, and each layer imports only the layers below it.

Every module's imports are read from its source — function-local ones too, so
a late import cannot hide a cycle — and resolved to modules of the package.
``python tests/test_architecture.py`` prints the graph's summary and any
violation. docs/architecture.md explains the layers.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Source folder of each package (pyproject.toml's [tool.setuptools.package-dir]).
PACKAGE_DIRS = {"tosac": "compiler", "tosac.ir": "ir", "tosac.schedules": "schedules", "tosac.runtime": "runtime",
                "tosac.tuning_logs": "tuning_logs"}

# Layers, bottom up. A module may import modules of its own layer's packages (without cycles) and of the
# layers this table allows; nothing else. The root package ``tosac`` (lazy public API) may import anything
# and nothing may import it.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "version": set(),
    "targets": {"errors"},
    "ir": {"errors"},
    "schedules": {"errors", "targets"},
    "runtime": {"errors", "targets"},
    "tuning_logs": set(),
    "passes": {"errors", "ir"},
    "frontends": {"errors", "ir"},
    "lower": {"errors", "targets", "ir", "passes", "schedules"},
    "pipeline": {"errors", "version", "targets", "ir", "passes", "lower", "schedules", "runtime", "tuning_logs"},
}
_PIPELINE_AND_BELOW = ALLOWED["pipeline"] | {"pipeline"}
ALLOWED.update({
    "tune": _PIPELINE_AND_BELOW,
    "models": {"errors", "ir", "frontends"},
    "conformance": _PIPELINE_AND_BELOW | {"frontends"},
    "prune": _PIPELINE_AND_BELOW | {"tune"},
})
ALLOWED["app"] = set(ALLOWED) - {"app"}
APPLICATIONS = {"tune", "models", "conformance", "prune", "app"}


def module_files() -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the package."""
    modules: dict[str, Path] = {}
    for package, folder in PACKAGE_DIRS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            name = ".".join([package, *parts])
            if any(name.startswith(p + ".") or name == p for p in PACKAGE_DIRS if p != package and len(p) > len(package)):
                continue                                  # a folder that is a package of its own mapping
            modules[name] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules ``name`` imports anywhere in its source (``from pkg import mod`` counts as mod)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def resolve(dotted: str) -> str | None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}" if base else anchor
            submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules]
            targets = submodules if len(submodules) == len(node.names) else [base, *submodules]
        else:
            continue
        for target in targets:
            if target == "tosac" or target.startswith("tosac."):
                resolved = resolve(target)
                if resolved and resolved != name:
                    found.add(resolved)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def layer_of(module: str) -> str:
    """``tosac.pipeline.driver`` -> ``pipeline``; ``tosac.errors`` -> ``errors``; the root -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    out = []
    for source, targets in sorted(graph.items()):
        src = layer_of(source)
        for target in sorted(targets):
            dst = layer_of(target)
            if target == "tosac":
                out.append(f"{source} imports the root package tosac (import the module that defines the name)")
            elif src and dst != src and dst not in ALLOWED.get(src, set()):
                out.append(f"{source} ({src}) imports {target} ({dst})")
    return out


def summary(graph: dict[str, set[str]]) -> str:
    edges = sum(len(t) for t in graph.values())
    return (f"{len(graph)} modules, {edges} edges, {len(cycles(graph))} cycles, "
            f"{len(layer_violations(graph))} layer violations")


def test_every_module_belongs_to_a_layer():
    graph = import_graph()
    assert {layer_of(m) for m in graph} - {""} <= set(ALLOWED), "a new top-level module needs a row in ALLOWED"


def test_import_graph_has_no_cycles():
    graph = import_graph()
    assert cycles(graph) == [], summary(graph)


def test_layers_import_only_what_they_may():
    graph = import_graph()
    assert layer_violations(graph) == [], summary(graph)


def test_the_rules_catch_what_they_should():
    """The checker itself: a planted cycle and a planted upward import are found."""
    graph = {"tosac.ir.graph": {"tosac.ir.ops"}, "tosac.ir.ops": {"tosac.ir.graph"},
             "tosac.schedules.dense": {"tosac.pipeline.driver"}, "tosac.pipeline.driver": {"tosac.app.cli"},
             "tosac.app.cli": set(), "tosac.runtime.jit": {"tosac.schedules.dense"}, "tosac.ir.dtypes": {"tosac"},
             "tosac": set()}
    assert cycles(graph) == [["tosac.ir.graph", "tosac.ir.ops"]]
    assert len(layer_violations(graph)) == 4


def _python_succeeds(code: str) -> None:
    """Runs ``code`` in a fresh interpreter (nothing imported yet) and fails with its output if it fails."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_importing_the_ir_loads_no_compiler():
    _python_succeeds("import sys, tosac.ir, tosac.ir.reference.interpreter, tosac.ir.serialize; "
                     "bad = sorted(m for m in sys.modules if m.startswith(('llvmlite', 'tosac.pipeline', "
                     "'tosac.lower', 'tosac.schedules', 'tosac.runtime'))); print(bad); assert not bad")


def test_tosac_compile_resolves_lazily():
    _python_succeeds("import sys, tosac; assert 'llvmlite' not in sys.modules; "
                     "from tosac.pipeline.driver import compile; assert tosac.compile is compile; "
                     "import tosac.tune; assert tosac.tune.tune and tosac.models.load")


if __name__ == "__main__":
    g = import_graph()
    print(summary(g))
    for c in cycles(g):
        print("cycle:", " <-> ".join(c))
    for v in layer_violations(g):
        print("violation:", v)
