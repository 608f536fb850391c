"""Progress bars are tqdm's text bars: `tqdm.auto` (and its notebook forms) warns at import in a
Jupyter kernel without ipywidgets, which put a red warning box into every lesson that imports
the project."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIDGET_FORMS = {"tqdm.auto", "tqdm.autonotebook", "tqdm.notebook"}


def test_no_module_imports_a_widget_progress_bar():
    found = []
    for path in sorted((ROOT / "accelerated").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.relative_to(ROOT)}: {n}" for n in names if n in WIDGET_FORMS]
    assert found == []
