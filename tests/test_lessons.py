"""The lessons: jupytext percent files that open as notebooks and run top to bottom on a CPU.

The fast checks convert each lesson to a notebook (what `jupytext --to ipynb` gives a student) and
check its shape. Executing them is slow, and the site build (tests/test_docs_site.py) already
executes every lesson with mkdocs-jupyter (a raising cell fails that build); so the execution test
here runs only when the site test is not part of the same pytest session:
`python -m pytest tests/test_lessons.py` runs each lesson alone, with a clearer failure report.
"""

import re
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.py"))
SITE_TEST = "test_docs_site.py"


def lesson_id(path: Path) -> str:
    return path.stem


def test_lessons_are_numbered_in_order():
    numbers = [int(path.name[:2]) for path in LESSONS]
    assert numbers == list(range(1, len(LESSONS) + 1)), f"lessons out of order: {numbers}"


@pytest.mark.parametrize("path", LESSONS, ids=lesson_id)
def test_lesson_converts_to_a_notebook(path):
    text = path.read_text(encoding="utf-8")
    notebook = jupytext.reads(text, fmt="py:percent")
    nbformat.validate(notebook)
    ipynb = nbformat.reads(jupytext.writes(notebook, fmt="ipynb"), as_version=4)
    back = jupytext.reads(jupytext.writes(ipynb, fmt="py:percent"), fmt="py:percent")
    cells = [(c.cell_type, c.source) for c in notebook.cells]
    assert [(c.cell_type, c.source) for c in ipynb.cells] == cells
    assert [(c.cell_type, c.source) for c in back.cells] == cells, "py -> ipynb -> py changes it"
    kinds = {cell.cell_type for cell in notebook.cells}
    assert kinds == {"markdown", "code"}, f"expected Markdown and code cells, got {kinds}"
    first = notebook.cells[0]
    number = int(path.name[:2])
    assert first.cell_type == "markdown" and re.match(rf"# Lesson {number}: \S", first.source), (
        f"the first cell must be the title '# Lesson {number}: ...' (it becomes the page title)"
    )
    assert notebook.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", LESSONS, ids=lesson_id)
def test_lesson_is_in_the_site_navigation(path):
    assert f"lessons/{path.name}" in (ROOT / "mkdocs.yml").read_text(encoding="utf-8")


@pytest.mark.slow
@pytest.mark.parametrize("path", LESSONS, ids=lesson_id)
def test_lesson_runs_top_to_bottom(path, request, monkeypatch):
    selected = {item.path.name for item in request.session.items}
    if SITE_TEST in selected:
        pytest.skip(f"executed by tests/{SITE_TEST} (the site build) in this session")
    from nbclient import NotebookClient

    # The lessons' matrices are small: one BLAS thread avoids oversubscribing a loaded machine.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")

    notebook = jupytext.read(path)
    client = NotebookClient(notebook, kernel_name="python3", timeout=600,
                            resources={"metadata": {"path": str(path.parent)}})  # fmt: skip
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on failure
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]  # fmt: skip
    assert not errors
