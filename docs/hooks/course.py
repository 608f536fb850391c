"""MkDocs hook: put the course's lessons and a local MathJax into the site.

- The lessons live in `lessons/` at the repository root (where a student opens them with Jupyter);
  this hook adds each `lessons/NN_name.py` to the site as the page `lessons/NN_name/`, and
  mkdocs-jupyter (its `include` restricted to `lessons/*.py`) executes and renders it.
- MathJax 3 comes from the PyPI package `django-static-mathjax` (in the `docs` extra): its
  self-contained `tex-svg-full.js` (SVG output, glyphs inlined, every TeX extension built in)
  and its licence are added as `assets/mathjax/`, so formulas typeset with no network access.
- Each lesson also goes into the site as a notebook, `lessons/NN_name.ipynb` (converted by
  jupytext at build time, outputs left for the reader's own run), with a download link at the top
  of its page.
- Source listings of the API pages (mkdocstrings) show the code without the snippet section
  markers that the Equations page uses to include it.
- The lessons' kernels talk to the build over Unix sockets rather than local TCP
  (`hooks/jupyter/jupyter_nbconvert_config.json`, found through `JUPYTER_CONFIG_PATH`), so
  ipykernel has no reason to print its warning about unencrypted TCP for every lesson.
- `mkdocs serve` also watches the lessons and the sources that the snippets include.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import jupytext
from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

LESSONS_DIR = "lessons"
WATCHED_SOURCES = ("lessons", "reference", "accelerated")
# Two loaders that nbconvert's template puts in every notebook page: MathJax 2 (with an empty URL,
# or a CDN's; the site's own MathJax 3 typesets the notebooks instead) and Mermaid (from a CDN,
# for diagrams the lessons do not have). Removed, so that no page refers to another host.
NBCONVERT_LOADERS = (
    re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.DOTALL),
    re.compile(
        r'<script type="module">\s*document\.addEventListener\("DOMContentLoaded", async \(\) => \{'
        r'\s*const diagrams = document\.querySelectorAll\("\.jp-Mermaid.*?'
        r"<!-- End of mermaid configuration -->",
        re.DOTALL,
    ),
)
# A snippet section marker (`# --8<-- [start:NAME]`, `// --8<-- [end:NAME]`) in a highlighted
# listing, as pygments writes the comment. Removing the comment leaves its line blank, so the
# listing's line numbers still match the source file's.
LISTING_MARKER = re.compile(
    r'<span class="c[1m]?">(?:#|//)[ \t]*-+8&lt;-+[ \t]+\[[ \t]*(?:start|end)[ \t]*:[^\]]*\]'
    r"</span>"
)
MATHJAX_FILES = {
    "assets/mathjax/tex-svg-full.js": "es5/tex-svg-full.js",
    "assets/mathjax/LICENSE": "LICENSE",
}


def on_config(config):
    jupyter_config = str(Path(__file__).resolve().parent / "jupyter")
    paths = [p for p in os.environ.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep) if p]
    if jupyter_config not in paths:  # once, also when `mkdocs serve` reloads the config
        os.environ["JUPYTER_CONFIG_PATH"] = os.pathsep.join([jupyter_config, *paths])
    return config


def lesson_paths(root: Path) -> list[Path]:
    """The lessons, in course order: `lessons/NN_name.py`."""
    return sorted((root / LESSONS_DIR).glob("[0-9][0-9]_*.py"))


def mathjax_root() -> Path:
    """The MathJax distribution shipped inside `django-static-mathjax`."""
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise PluginError(
            "MathJax not found: install the docs extra (pip install -e '.[docs]'), "
            "which brings django-static-mathjax"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax"


# Before mkdocs-jupyter's on_files (priority 0), so it sees the lessons and wraps them as notebooks.
@event_priority(50)
def on_files(files, config):
    root = Path(config.config_file_path).parent
    for path in lesson_paths(root):
        # A plain File rooted at the repository (not File.generated): mkdocs-jupyter's wrapper
        # finds the notebook through src_dir.
        src_uri = f"{LESSONS_DIR}/{path.name}"
        files.append(File(src_uri, str(root), config.site_dir, config.use_directory_urls))
    for path in lesson_paths(root):
        notebook = jupytext.writes(jupytext.read(path), fmt="ipynb")
        files.append(File.generated(config, notebook_uri(path), content=notebook))
    mathjax = mathjax_root()
    for src_uri, relative in MATHJAX_FILES.items():
        source = mathjax / relative
        if not source.is_file():
            raise PluginError(f"MathJax file missing: {source}; reinstall django-static-mathjax")
        files.append(File.generated(config, src_uri, abs_src_path=str(source)))
    return files


def notebook_uri(path: Path) -> str:
    """Where the site keeps a lesson's notebook: `lessons/NN_name.ipynb`."""
    return f"{LESSONS_DIR}/{path.stem}.ipynb"


def download_links(page) -> str:
    """The lesson's notebook and source, to run it yourself (relative to the page's URL)."""
    stem = Path(page.file.src_uri).stem
    up = "../" if page.file.use_directory_urls else ""
    return (
        '<p class="lesson-downloads">Run this lesson yourself: '
        f'<a href="{up}{stem}.ipynb" download>{stem}.ipynb</a> (a Jupyter notebook) or '
        f"<code>lessons/{stem}.py</code> in the repository; see "
        f'<a href="{up}../index.html#run-the-lessons-yourself">how to run the lessons</a>.</p>'
    )


def on_page_content(html, page, config, files):
    if page.file.src_uri.startswith(f"{LESSONS_DIR}/"):
        for loader in NBCONVERT_LOADERS:
            html = loader.sub("", html)
        html = download_links(page) + html
    return LISTING_MARKER.sub("", html)


def on_serve(server, config, builder):
    root = Path(config.config_file_path).parent
    for name in WATCHED_SOURCES:
        if (root / name).is_dir():
            server.watch(str(root / name))
    return server
