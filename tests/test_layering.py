"""The house rules: which part of the scanner may import which.

Floors, lowest first; a module may import its own package and any package on a lower floor, and sideways only where
the table below says so. The static rules read every import in the source (lazy ones inside functions included); the
dynamic ones import the modules in a fresh interpreter and look at what got loaded.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCANNER = Path(__file__).resolve().parent.parent / "scanner"

# (floor, the top-level parts of `scanner` on it). `scanner` itself is the package's __init__ (its version).
FLOORS: list[tuple[str, set[str]]] = [
    ("vocabulary", {"scanner", "findings", "errors"}),
    ("parts", {"runtime", "intake", "torchview", "detectors", "policy", "reports", "zoo"}),
    ("orchestration", {"scan"}),
    ("fitting", {"calibration"}),
    ("commands", {"commands", "cli", "__main__", "registry"}),
]
# The only imports between two parts of one floor (importer, imported).
SIDEWAYS: set[tuple[str, str]] = {
    ("detectors", "runtime"),  # the one-pixel detector runs models on ONNX Runtime
    ("detectors", "torchview"),  # BAN differentiates through the torch view of the graph
    ("cli", "commands"),
    ("__main__", "cli"),
    ("commands", "registry"),  # serve and rescan assemble the registry's parts
}
# Rooms of one package that stay apart: (importer's prefix, prefix it must not import).
APART: list[tuple[str, str]] = [
    ("scanner.detectors.one_pixel", "scanner.detectors.ban"),
    ("scanner.detectors.ban", "scanner.detectors.one_pixel"),
    ("scanner.registry.service", "scanner.registry.rescan"),
    ("scanner.registry.rescan", "scanner.registry.service"),
    ("scanner.registry.gate", "scanner.registry.service"),
    ("scanner.registry.gate", "scanner.registry.rescan"),
]
FLOOR_OF = {part: index for index, (_, parts) in enumerate(FLOORS) for part in parts}


def module_name(path: Path) -> str:
    parts = path.relative_to(SCANNER.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every `scanner...` module `path` imports, anywhere in it; `from scanner.x import y` counts as scanner.x.y
    when y is a module."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if is_module(f"{base}.{alias.name}"))
    return {module for module in found if module == "scanner" or module.startswith("scanner.")}


def is_module(dotted: str) -> bool:
    path = SCANNER.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def part_of(module: str) -> str:
    return module.split(".")[1] if "." in module else "scanner"


def allowed(importer: str, imported: str) -> bool:
    mine, theirs = part_of(importer), part_of(imported)
    if mine == theirs:
        return True
    if mine in {"findings", "errors"}:
        return False  # the leaves import nothing of the package, not even each other
    return FLOOR_OF[theirs] < FLOOR_OF[mine] or (mine, theirs) in SIDEWAYS


SOURCES = sorted(SCANNER.rglob("*.py"))


def test_every_part_of_the_scanner_has_a_floor() -> None:
    parts = {part_of(module_name(path)) for path in SOURCES}
    assert parts == set(FLOOR_OF)


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: module_name(path))
def test_no_module_imports_a_higher_floor_or_a_room_it_stays_apart_from(path: Path) -> None:
    importer = module_name(path)
    upward = sorted(imported for imported in imports_of(path) if not allowed(importer, imported))
    assert upward == [], f"{importer} imports {upward}: {FLOORS}, sideways only {sorted(SIDEWAYS)}"
    crossing = [
        (mine, theirs)
        for mine, theirs in APART
        if importer.startswith(mine) and any(imported.startswith(theirs) for imported in imports_of(path))
    ]
    assert crossing == []


def loaded_after(code: str, repo_root: Path) -> list[str]:
    """The modules loaded after running `code` in a fresh interpreter."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], cwd=repo_root, capture_output=True, text=True, check=True)
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def every_module_of(package: str) -> str:
    return (
        f"import importlib, pkgutil, {package} as package\n"
        f"for found in pkgutil.walk_packages(package.__path__, '{package}.'):\n"
        "    importlib.import_module(found.name)"
    )


def test_import_scanner_loads_no_heavy_runtime(repo_root: Path) -> None:
    loaded = loaded_after("import scanner", repo_root)
    assert {"torch", "onnxruntime", "mlflow"} & set(loaded) == set()


def test_the_detectors_load_neither_the_intake_nor_the_zoo_nor_anything_above_them(repo_root: Path) -> None:
    loaded = loaded_after(every_module_of("scanner.detectors"), repo_root)
    assert "scanner.detectors.ban.detector" in loaded and "scanner.detectors.one_pixel.detector" in loaded
    above = {"intake", "zoo", "calibration", "registry", "cli", "commands"}
    assert [module for module in loaded if module.startswith("scanner.") and part_of(module) in above] == []


def test_the_zoo_loads_no_detector(repo_root: Path) -> None:
    loaded = loaded_after(every_module_of("scanner.zoo"), repo_root)
    assert "scanner.zoo.build" in loaded
    assert [module for module in loaded if module.startswith("scanner.") and part_of(module) == "detectors"] == []
