"""The floors of docs/architecture.md, held against the code: no module of `accelerated/` imports
from a floor above its own, nor sideways from another unit of its floor."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# unit (a module or package, dotted) -> floor; docs/architecture.md draws the same table
FLOORS = {
    "reference": 1, "accelerated.backend": 1, "accelerated.cli": 1, "accelerated.figures": 1,
    "accelerated.host": 1,
    "accelerated.ops": 2, "accelerated.kernels": 2, "accelerated.data": 2,
    "accelerated.files": 2,
    "accelerated.layers": 3, "accelerated.metrics": 3,
    "accelerated.models": 4,
    "accelerated.config": 5,
    "accelerated.checkpoint": 6,
    "accelerated.training": 7, "accelerated.sample": 7, "accelerated.evaluate": 7,
    "accelerated.train": 8, "accelerated.bench": 8, "accelerated.ablation": 8,
}


def unit_of(module: str) -> str | None:
    """The unit that holds `module` (the longest matching prefix), or None (not the project's)."""
    found = [u for u in FLOORS if module == u or module.startswith(u + ".")]
    return max(found, key=len) if found else None


def imports(path: Path) -> list[str]:
    """Every module `path` imports, at any depth of the file (imports inside functions too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return found


MODULES = sorted((ROOT / "accelerated").rglob("*.py"))


def test_every_module_has_a_floor():
    names = [".".join(p.relative_to(ROOT).with_suffix("").parts) for p in MODULES]
    assert [n for n in names if unit_of(n) is None and n != "accelerated.__init__"] == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_import_runs_up_or_sideways(path):
    me = unit_of(".".join(path.relative_to(ROOT).with_suffix("").parts))
    if me is None:  # accelerated/__init__.py
        return
    wrong = []
    for name in imports(path):
        other = unit_of(name)
        if other is None or other == me:
            continue
        if FLOORS[other] >= FLOORS[me]:
            wrong.append(f"{name} (floor {FLOORS[other]}, this is floor {FLOORS[me]})")
    assert wrong == [], f"{path.relative_to(ROOT)} imports " + ", ".join(wrong)
