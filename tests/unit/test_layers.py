"""The package graph keeps its layers (docs/design.md): no cycle, no upward import, no project
import inside a function, and no module over 400 lines.

Layers, bottom to top; a module imports from its own package or lower layers only:
root modules (``pipeline/*.py``) → data → lang → loss → nas → train → search → decode →
stages → study → steps_py. ``steps_py`` (the click commands) may import the library inside a
command, so that ``stnas --help`` does not load torch; nothing else may.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Set, Tuple

REPO = Path(__file__).resolve().parents[2]
LAYERS = [
    "pipeline",
    "pipeline.data",
    "pipeline.lang",
    "pipeline.loss",
    "pipeline.nas",
    "pipeline.train",
    "pipeline.search",
    "pipeline.decode",
    "pipeline.stages",
    "pipeline.study",
    "steps_py",
]
LAZY_OK = {"steps_py"}  # the CLI imports the library lazily
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(module: str) -> str:
    """The layer a module belongs to: ``pipeline.<pkg>``, ``pipeline`` (root) or steps_py."""
    parts = module.split(".")
    if parts[0] == "steps_py":
        return "steps_py"
    if len(parts) >= 2 and f"pipeline.{parts[1]}" in LAYERS:
        return f"pipeline.{parts[1]}"
    return "pipeline"


def project_imports(path: Path) -> List[Tuple[str, int, bool]]:
    """(imported project module, line, inside a function) of every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out: List[Tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
            )
            names: List[str] = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                names = [child.module]
                # `from pipeline import errors` imports a module too
                names += [
                    f"{child.module}.{a.name}"
                    for a in child.names
                    if (REPO / Path(*child.module.split("."), a.name + ".py")).is_file()
                    or (REPO / Path(*child.module.split("."), a.name)).is_dir()
                ]
            for name in names:
                if name.split(".")[0] in ("pipeline", "steps_py"):
                    out.append((name, child.lineno, in_function))
            visit(child, inner)

    visit(tree, False)
    return out


def sources() -> Dict[str, Path]:
    files = [*(REPO / "pipeline").rglob("*.py"), *(REPO / "steps_py").rglob("*.py")]
    return {module_name(p): p for p in files if "_build" not in p.parts}


def test_layer_table_is_the_documented_one():
    design = (REPO / "docs" / "design.md").read_text(encoding="utf-8")
    for layer in LAYERS[1:]:
        assert layer in design, f"docs/design.md does not name the layer {layer}"


def test_every_package_has_a_layer():
    packages = {p.parent for p in (REPO / "pipeline").rglob("__init__.py")} - {REPO / "pipeline"}
    missing = [
        str(p.relative_to(REPO))
        for p in packages
        if "_build" not in p.parts and package_of(module_name(p / "x.py")) == "pipeline"
    ]
    assert not missing, f"packages without a layer in LAYERS: {missing}"


def test_no_upward_or_function_level_imports():
    bad = []
    for module, path in sources().items():
        mine = LAYERS.index(package_of(module))
        for target, line, in_function in project_imports(path):
            theirs = LAYERS.index(package_of(target))
            where = f"{path.relative_to(REPO)}:{line} imports {target}"
            if theirs > mine:
                bad.append(f"{where} (upward: {LAYERS[mine]} → {LAYERS[theirs]})")
            if in_function and package_of(module) not in LAZY_OK:
                bad.append(f"{where} inside a function")
    assert not bad, "\n".join(bad)


def test_no_import_cycle_between_modules():
    mods = sources()
    graph: Dict[str, Set[str]] = defaultdict(set)
    for module, path in mods.items():
        for target, _, _ in project_imports(path):
            while target and target not in mods:  # `from a.b import name` → module a.b
                target = target.rpartition(".")[0]
            if target and target != module and not module.startswith(target + "."):
                graph[module].add(target)
    state: Dict[str, int] = {}
    stack: List[str] = []
    cycles: List[List[str]] = []

    def dfs(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                dfs(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(mods):
        if node not in state:
            dfs(node)
    assert not cycles, "import cycles:\n" + "\n".join(" → ".join(c) for c in cycles)


def test_checker_sees_what_it_forbids(tmp_path):
    """The parser finds function-level and module-level project imports (so the tests above
    can fail)."""
    src = tmp_path / "m.py"
    src.write_text(
        "import os\nfrom pipeline.errors import StnasError\n\n"
        "def f():\n    from pipeline.stages import runner\n    return runner\n"
    )
    found = project_imports(src)
    assert ("pipeline.errors", 2, False) in found
    assert ("pipeline.stages", 5, True) in found
    assert LAYERS.index(package_of("pipeline.stages.runner")) > LAYERS.index(
        package_of("pipeline.data.layout")
    )


def test_no_module_over_400_lines():
    long = {
        str(p.relative_to(REPO)): n
        for p in sources().values()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_stage_frame_only_in_stages():
    """Locks, stage logs and stage records are used by the stage runner alone."""
    frame = (
        "dir_locks",
        "stage_log",
        "StageDir",
        "write_stage_json",
        "remove_dependents",
        "mark_done",
    )
    bad = []
    for module, path in sources().items():
        if package_of(module) == "pipeline.stages" or module in (
            "pipeline.locks",
            "pipeline.logfile",
        ):
            continue
        text = path.read_text(encoding="utf-8")
        bad += [f"{path.relative_to(REPO)}: {name}" for name in frame if name in text]
    assert not bad, "stage frame code outside pipeline/stages/: " + ", ".join(bad)
