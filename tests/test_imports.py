"""No import loop between vqc's modules: the package is layered, each module importing only
modules below it. Imports inside functions count too; those under ``TYPE_CHECKING`` do not
(they never run)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "vqc"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the vqc modules it imports (a ``from package import name`` that names a
    module counts as that module)."""
    modules = _modules()

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        unchecked = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                     and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
        for node in ast.walk(tree):
            if id(node) in unchecked:
                continue
            targets: list[str | None] = []
            if isinstance(node, ast.Import):
                targets = [known(a.name) for a in node.names if a.name.startswith("vqc")]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and \
                    (node.module or "").startswith("vqc"):
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules
                           else known(node.module or "") for a in node.names]
            graph[name].update(t for t in targets if t and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_finder_sees_a_loop() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_loop_between_vqc_modules() -> None:
    graph = import_graph()
    assert len(graph) > 100
    assert "vqc.training.task" in graph["vqc.cli.train"]  # imported inside a function: counted
    assert cycles(graph) == []


#: Packages of pure torch code: the model, drift, inspection, export and scoring layers run
#: without Lightning or Hydra (the inspector loads where neither is installed).
PURE = ("vqc.models", "vqc.drift", "vqc.inspection", "vqc.export", "vqc.metrics")


def test_pure_torch_packages_import_neither_lightning_nor_hydra() -> None:
    found = []
    for name, path in _modules().items():
        if not name.startswith(PURE):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{name}: {n}" for n in names
                      if n.split(".")[0] in ("lightning", "omegaconf", "hydra")]
    assert found == []
