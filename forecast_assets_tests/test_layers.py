"""The package's shape: imports point one way, there are no import loops, assets stay thin.

Layers, lowest first: ``core`` (no Dagster) < settings, resources, partitions and the other
glue a definition needs < assets and checks < definitions, jobs, schedules, sensors and the
demo. A module may import its own layer and the layers below, never one above.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "forecast_assets"
TOP_LAYERS = {
    "settings": 1,
    "settings_reference": 1,
    "resources": 1,
    "partitions": 1,
    "concurrency": 1,
    "specs": 1,
    "frames": 1,
    "assets": 2,
    "checks": 2,
    "definitions": 3,
    "jobs": 3,
    "schedules": 3,
    "sensors": 3,
    "demo": 3,
}
MAX_ASSET_LINES = 60


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:  # the package itself
        return 0
    if parts[1] == "core":
        return 0
    if parts[1] not in TOP_LAYERS:
        pytest.fail(f"{module} has no layer: add it to TOP_LAYERS in {Path(__file__).name}")
    return TOP_LAYERS[parts[1]]


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Every module of the package that ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from package import module`` names a module too.
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in names if name in modules}
    return found


def package_graph() -> dict[str, set[str]]:
    files = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: imports_of(path, set(files)) - {name} for name, path in files.items()}


def test_imports_point_down_the_layers() -> None:
    upward = [
        f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
        for module, targets in package_graph().items()
        for target in targets
        if layer_of(target) > layer_of(module)
    ]
    assert upward == []


def test_core_imports_nothing_of_dagster() -> None:
    offenders = []
    for path in (PACKAGE / "core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.name}: {n}" for n in names if n.split(".")[0].startswith("dagster")
            ]
    assert offenders == []


def test_there_is_no_import_loop() -> None:
    graph = package_graph()
    loops = []
    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                loops.append(" -> ".join([*trail[trail.index(target) :], target]))
            elif target not in state:
                visit(target, [*trail, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    # A package's __init__ importing its own modules is not a loop worth naming.
    assert [loop for loop in loops if not loop.startswith("forecast_assets ->")] == []


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every package module that importing ``start`` imports, directly or through others."""
    seen, todo = set(), [start]
    while todo:
        for target in graph[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def test_plots_and_the_search_space_stay_off_the_trainer() -> None:
    # The report's plots work on plain records and frames; the search-space language is read
    # by the settings, which must load without the trainer's study runner or a plot library.
    graph = package_graph()
    plots = reachable(graph, "forecast_assets.core.plots")
    assert "forecast_assets.core.training.trainer" not in plots
    space = reachable(graph, "forecast_assets.core.training.search_space")
    assert {"forecast_assets.core.training.tuning", "forecast_assets.core.plots"}.isdisjoint(space)


def test_asset_functions_are_thin() -> None:
    long = []
    for path in (PACKAGE / "assets").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef):
                continue
            decorators = [ast.unparse(d) for d in node.decorator_list]
            if any("asset" in d for d in decorators):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_ASSET_LINES:
                    long.append(f"{path.name}:{node.name} has {lines} lines")
    assert long == []


def test_the_scanner_finds_imports_at_any_depth(tmp_path: Path) -> None:
    # The rules above are only as good as the scan: a lazy import inside a function, and a
    # module named in ``from package import module``, both count.
    source = tmp_path / "example.py"
    source.write_text(
        "from forecast_assets import jobs\n"
        "def later():\n    from forecast_assets.sensors import build_sensors\n"
    )
    known = {"forecast_assets.jobs", "forecast_assets.sensors", "forecast_assets.core"}
    assert imports_of(source, known) == {"forecast_assets.jobs", "forecast_assets.sensors"}
