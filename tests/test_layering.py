"""The architecture's layering, checked on the source: which package may import which, and no cycles.

data <- models <- capture / training <- realtime <- calibration <- gui; `app` (run, demo, view, calibrate) and
`bench` sit on top,
where everything can see them. The foundation modules of the top-level package (errors, paths, constants,
processes, options) import no part of myosight; the CLI (`myosight.cli`) loads the command modules by name. Every
import counts, function-local ones included: an import inside a function is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import REPO_ROOT

#: Each package and the packages it may import (besides the foundation).
ALLOWED: dict[str, set[str]] = {
    "data": set(),
    "models": {"data"},
    "capture": {"models", "data"},
    "training": {"models", "data"},
    "realtime": {"capture", "training", "models", "data"},
    "calibration": {"realtime", "capture", "training", "models", "data"},
    "gui": {"calibration", "realtime", "capture", "training", "models", "data"},
    "app": {"gui", "calibration", "realtime", "capture", "training", "models", "data"},
    "bench": {"app", "gui", "calibration", "realtime", "capture", "training", "models", "data"},
}
FOUNDATION = {"errors", "paths", "constants", "arms", "processes", "options", "interrupts"}
TOP_LEVEL_FOLDER = "core"  # installed as the `myosight` package itself


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, dotted name) of every `myosight` import in a file, function-local ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            found += [(node.lineno, name) for name in names[:1]]
            if node.module == "myosight":  # `from myosight import x`: x is what is imported
                found += [(node.lineno, name) for name in names[1:]]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, name) for line, name in found if name == "myosight" or name.startswith("myosight.")]


def target_of(name: str) -> str:
    """The package (or foundation module) a dotted `myosight...` name belongs to."""
    parts = name.split(".")
    if len(parts) == 1:
        return "myosight"
    return parts[1] if parts[1] in ALLOWED else f"myosight.{parts[1]}"


def package_edges() -> dict[str, dict[str, list[str]]]:
    """package -> imported package -> ["file:line name", ...] (foundation modules and the CLI left out)."""
    edges: dict[str, dict[str, list[str]]] = {package: {} for package in ALLOWED}
    for package in ALLOWED:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            for line, name in imported_modules(path):
                target = target_of(name)
                if target != package and target in ALLOWED:
                    edges[package].setdefault(target, []).append(f"{path.relative_to(REPO_ROOT)}:{line} {name}")
    return edges


def test_each_package_imports_only_the_layers_below_it() -> None:
    wrong = [f"{package} -> {target}: {', '.join(where[:3])}"
             for package, targets in package_edges().items()
             for target, where in targets.items() if target not in ALLOWED[package]]
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_no_import_cycle_between_packages() -> None:
    edges = {package: set(targets) for package, targets in package_edges().items()}

    def reaches(start: str, goal: str, seen: frozenset[str] = frozenset()) -> bool:
        return any(nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})) for nxt in edges[start])

    cycles = sorted({tuple(sorted((a, b))) for a in edges for b in edges[a] if reaches(b, a)})
    assert not cycles, f"packages that import each other (directly or through others): {cycles}"


@pytest.mark.parametrize("module", sorted(FOUNDATION))
def test_foundation_modules_import_no_part_of_myosight(module: str) -> None:
    path = REPO_ROOT / TOP_LEVEL_FOLDER / f"{module}.py"
    own = [(line, name) for line, name in imported_modules(path)
           if target_of(name) not in {f"myosight.{m}" for m in FOUNDATION}]
    assert not own, f"{path.name} imports {own}: the foundation must stay below every package"


def test_every_package_folder_is_checked() -> None:
    """A new top-level package must be placed in the layering before it can be used."""
    folders = {p.name for p in REPO_ROOT.iterdir() if (p / "__init__.py").is_file()}
    assert folders - {TOP_LEVEL_FOLDER, "tests"} == set(ALLOWED)


def test_the_checker_sees_function_local_imports(tmp_path: Path) -> None:
    source = tmp_path / "example.py"
    source.write_text("def f():\n    from myosight.gui.app import run_viewer\n    import myosight.data.synth\n")
    assert [target_of(name) for _, name in imported_modules(source)] == ["gui", "data"]
