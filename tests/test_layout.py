"""The package's layout as a specification: layers import downward only, no cycles, no module over 400 lines.

Read from the source (every `import` and `from ... import`, those inside functions included, those under
`if TYPE_CHECKING:` left out, since they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "synthdistill"
MAX_LINES = 400

# Who may not import whom: a layer never reaches the layers above it.
FORBIDDEN = {
    "synthdistill.teachers": ("runs", "stages", "critics", "pipeline", "dryrun", "export", "cli", "review"),
    "synthdistill.runs": ("stages", "critics", "pipeline", "dryrun", "export", "cli", "review"),
    "synthdistill.critics": ("stages", "pipeline", "dryrun", "export", "cli", "review"),
    "synthdistill.stages": ("pipeline", "dryrun", "export", "cli", "review"),
    "synthdistill.student": ("stages", "pipeline", "dryrun", "export", "cli", "review"),
    "synthdistill.growth": ("stages", "runs", "pipeline", "cli", "review"),
    "synthdistill.scoring": ("critics", "stages", "runs", "pipeline", "dryrun", "export", "cli", "review"),
    "synthdistill.pipeline": ("cli", "review", "dryrun", "export"),
    "synthdistill.review": ("cli", "stages", "pipeline"),
    # The sandbox runs programs and knows nothing of records, teachers or stages.
    "synthdistill.sandbox": (
        "records",
        "parsing",
        "config",
        "teachers",
        "runs",
        "stages",
        "critics",
        "scoring",
        "growth",
        "student",
        "sources",
        "pipeline",
        "dryrun",
        "export",
        "cli",
        "review",
    ),
}


def test_no_layer_imports_a_layer_above_it() -> None:
    graph = _imports()
    wrong = [
        f"{module} imports {target}"
        for module, targets in graph.items()
        for prefix, above in FORBIDDEN.items()
        if module == prefix or module.startswith(prefix + ".")
        for target in targets
        if any(target == f"synthdistill.{a}" or target.startswith(f"synthdistill.{a}.") for a in above)
    ]
    assert wrong == []


def test_a_stage_reaches_other_stages_only_for_their_configs() -> None:
    # The adversarial rounds run generate, filter, train, ... through the registry; they import only the
    # configs those stages declare, to nest them in their own.
    graph = _imports()
    reached = {
        (module, target)
        for module, targets in graph.items()
        if module.startswith("synthdistill.stages.")
        for target in targets
        if target.startswith("synthdistill.stages.") and _stage_of(target) != _stage_of(module)
    }
    assert {module for module, _ in reached} <= {
        "synthdistill.stages.adversarial.stage",
        "synthdistill.stages.star.stage",
    }


def test_the_modules_import_no_cycle() -> None:
    graph = _imports()
    cycles = [component for component in _strongly_connected(graph) if len(component) > 1]
    assert cycles == []


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_module_is_at_most_400_lines_and_opens_with_a_docstring(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    lines = len(text.splitlines())
    assert lines <= MAX_LINES, f"{path} has {lines} lines; split it by concern"
    assert ast.get_docstring(ast.parse(text)), f"{path} has no module docstring"


def _imports() -> dict[str, set[str]]:
    """Each module of the package and the package modules it imports."""
    modules = {_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found: set[str] = set()
        for node in _runtime_nodes(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                # `from synthdistill.stages import generate` imports a module, not a name.
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
        graph[name] = {target for target in found if target in modules and target != name}
    return graph


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    nodes: list[ast.AST] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        nodes.append(node)
        nodes.extend(_runtime_nodes(node))
    return nodes


def _name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _stage_of(module: str) -> str:
    return module.split(".")[2] if module.count(".") >= 2 else ""


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components: a component of more than one module is a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components
