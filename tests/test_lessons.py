"""The lessons: jupytext percent files that open as notebooks and run top to bottom on a CPU.

The fast checks convert each lesson to a notebook (what `jupytext --to ipynb` gives a student) and
check its shape: a title, headings without TeX (they become the table of contents, where MathJax
does not run), and at least three exercises whose solutions are hidden in `<details>` blocks.

Executing them is slow, and the site build (tests/test_docs_site.py) already executes every lesson
with mkdocs-jupyter (a raising cell fails that build); so the execution test here runs only when
the site test is not part of the same pytest session: `python -m pytest tests/test_lessons.py`
runs each lesson alone, with a clearer failure report, and then the code of its solutions.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.py"))
SITE_TEST = "test_docs_site.py"
MIN_EXERCISES = 3
SOLUTION = re.compile(r"<details><summary>Solution</summary>(.*?)</details>", re.DOTALL)
CODE_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def markdown_of(path: Path) -> str:
    notebook = jupytext.read(path)
    return "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")


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
def test_lesson_headings_hold_no_tex(path):
    headings = [line for line in markdown_of(path).splitlines() if line.startswith("#")]
    with_tex = [h for h in headings if "$" in h or "\\" in h]
    assert not with_tex, f"TeX in headings (shown raw in the table of contents): {with_tex}"


@pytest.mark.parametrize("path", LESSONS, ids=lesson_id)
def test_lesson_ends_with_exercises_and_hidden_solutions(path):
    _, found, exercises = markdown_of(path).partition("## Exercises")
    assert found, "no '## Exercises' section"
    solutions = SOLUTION.findall(exercises)
    assert len(solutions) >= MIN_EXERCISES, (
        f"{len(solutions)} solutions in <details><summary>Solution</summary> blocks; at least "
        f"{MIN_EXERCISES} exercises need one each"
    )
    assert all(s.strip() for s in solutions), "an empty solution"


PREDICT = re.compile(r"\bpredict\b", re.IGNORECASE)
SHOWS = re.compile(r"\b(print|display)\(|\bplt\.")


@pytest.mark.parametrize("path", LESSONS, ids=lesson_id)
def test_predictions_come_before_their_answers(path):
    """Every code cell between a prompt to predict and the next text cell shows its output folded
    (`hidden_output`), so the page does not print the answer under the question."""
    shown, asked = [], False
    for cell in jupytext.read(path).cells:
        if cell.cell_type == "markdown":
            asked = bool(PREDICT.search(cell.source))
        elif asked and SHOWS.search(cell.source) and "hidden_output(" not in cell.source:
            shown.append(cell.source)
    assert not shown, f"answers shown before the learner predicts: {shown}"


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
    # the code of the hidden solutions runs too, after the lesson (whose names it uses)
    for block in CODE_BLOCK.findall("\n".join(SOLUTION.findall(markdown_of(path)))):
        notebook.cells.append(nbformat.v4.new_code_cell(block))
    client = NotebookClient(notebook, kernel_name="python3", timeout=600,
                            resources={"metadata": {"path": str(path.parent)}})  # fmt: skip
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on failure
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    # a warning printed by a cell is a red box on the page, e.g. tqdm's "IProgress not found"
    warned = [o.text for o in outputs if o.output_type == "stream" and o.name == "stderr"
              and "Warning" in o.text]  # fmt: skip
    assert not warned, f"warnings in the executed lesson: {warned}"


@pytest.mark.slow
def test_site_kernels_start_without_warnings(tmp_path):
    """The site build's kernels (nbconvert, configured from docs/hooks/jupyter as the hook sets
    JUPYTER_CONFIG_PATH) run a cell and print no warning, e.g. ipykernel's about local TCP."""
    script = (
        "import nbformat\n"
        "from nbconvert.nbconvertapp import NbConvertApp\n"
        "from nbconvert.preprocessors import ExecutePreprocessor\n"
        "app = NbConvertApp()\n"
        "app.load_config_file()\n"
        "nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('print(6 * 7)')])\n"
        "ExecutePreprocessor(config=app.config, kernel_name='python3').preprocess(nb)\n"
        "print(nb.cells[0].outputs[0]['text'].strip())\n"
    )
    env = {**os.environ, "JUPYTER_CONFIG_PATH": str(ROOT / "docs" / "hooks" / "jupyter")}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "42"
    assert "WARNING" not in result.stderr, result.stderr[-3000:]
