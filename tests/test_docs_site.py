"""The course site builds strictly, and its formulas typeset in a real browser with no network.

`mkdocs build --strict` fails on a broken link or anchor, a missing snippet section, a page left
out of the nav, and a lesson cell that raises (mkdocs-jupyter executes every lesson, so this is
where the lessons run in CI). Then headless Chromium loads built pages from disk (file://, so
nothing could come from a network) and the test reads back the typeset DOM: MathJax's rendered
elements are there, no raw TeX is left, and `tests/docs_layout_check.js` finds nothing a reader
would miss: no code or output block hidden to the right or cut off, no line of code broken
mid-word, no text drawing wrapped, no picture, drawing or table wider than its box, no table of
figures squashed (a page with one defect of each kind shows that every check fires). A screenshot
is saved (in the test's tmp dir and in `build/docs-screenshots/` for people to look at). Without a
browser: no lesson page shows a stderr output box (a library's warning), no navigation or table
of contents holds TeX, no page shows a snippet section marker, and every lesson has its notebook.
"""

import html
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import jupytext
import nbformat
import pytest
from test_docs_markers import MARKER, docs_includes

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT_DIR = ROOT / "build" / "docs-screenshots"
# Pages with math, of each kind: Markdown (pymdownx.arithmatex), docstrings (mkdocstrings) and
# the lesson notebooks (mkdocs-jupyter, which leaves raw $...$ in their Markdown cells).
MATH_PAGES = {
    "paper": "paper/index.html",
    "equations": "equations/index.html",
    **{name: f"{name}/index.html" for name in ("training", "ablation", "gpu", "performance")},
    "api-reference": "api/reference/index.html",
    "api-accelerated": "api/accelerated/index.html",
    **{
        path.stem: f"lessons/{path.stem}/index.html"
        for path in sorted((ROOT / "lessons").glob("[0-9][0-9]_*.py"))
    },
}
# Every page is laid out in the browser: each Markdown page of docs/, and the lessons.
BROWSER_PAGES = {
    "home": "index.html",
    **{path.stem: f"{path.stem}/index.html" for path in sorted((ROOT / "docs").glob("*.md"))
       if path.stem != "index"},
    **MATH_PAGES,
}  # fmt: skip
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--virtual-time-budget=30000", "--window-size=1280,1600",
]  # fmt: skip
# Run in the browser after the page has loaded: what a reader sees of the page (code and output
# blocks whole, nothing broken mid-word, drawings unwrapped, pictures and tables inside their box,
# no squashed table of figures); each finding goes into an attribute of <body>, which --dump-dom
# returns.
LAYOUT_CHECK = "<script>\n" + (ROOT / "tests" / "docs_layout_check.js").read_text() + "</script>"
LAYOUT_ATTRIBUTE = re.compile(r'data-layout-problems="([^"]*)"')
# Raw TeX that MathJax would have replaced: \( \) \[ \] $$, or $...$ around a formula.
RAW_TEX = re.compile(r"\\[()\[\]]|\$\$|\$[^\s$][^$]*\$")


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built once for this module with `mkdocs build --strict`."""
    out = tmp_path_factory.mktemp("docs") / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "SAGAN_DOCS_CACHE": "false",
           "SAGAN_DOCS_EXECUTE": "true"}  # fmt: skip
    env.pop("MPLBACKEND", None)  # the kernel's inline backend puts the figures in the pages
    # The lessons' matrices are small: one BLAS thread avoids oversubscribing a loaded machine.
    env.setdefault("OMP_NUM_THREADS", "1")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr[-6000:]}"
    return out


class _ArticleText(HTMLParser):
    """Text of the page's main article outside code, scripts and typeset math; counts math."""

    SKIP = frozenset({"code", "pre", "script", "style", "mjx-container", "svg", "textarea"})
    # mkdocs-jupyter's hidden copy of each code cell's source, for its copy button
    SKIP_CLASS = "clipboard-copy-txt"
    VOID = frozenset({"br", "img", "hr", "input", "meta", "link", "source", "wbr", "area", "col"})

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.open: list[tuple[str, bool]] = []  # enclosing elements: (tag, whether skipped)
        self.text: list[str] = []
        self.typeset = 0
        self.errors = 0

    def handle_starttag(self, tag, attrs):
        if tag == "mjx-container":
            self.typeset += 1
        attrs = dict(attrs)
        if attrs.get("data-mml-node") == "merror":
            self.errors += 1
        skip = tag in self.SKIP or self.SKIP_CLASS in (attrs.get("class") or "").split()
        if tag not in self.VOID:
            self.open.append((tag, skip))

    def handle_endtag(self, tag):
        if any(t == tag for t, _ in self.open):  # close it, and anything left open inside it
            while self.open.pop()[0] != tag:
                pass

    def handle_data(self, data):
        inside_article = any(t == "article" for t, _ in self.open)
        if inside_article and not any(skip for _, skip in self.open):
            self.text.append(data)


def with_layout_check(page: Path) -> Path:
    """A copy of `page` beside it (so its relative links still work) that runs LAYOUT_CHECK."""
    checked = page.with_name(f"{page.stem}.layout-check.html")
    text = page.read_text(encoding="utf-8")
    checked.write_text(text.replace("</body>", LAYOUT_CHECK + "</body>", 1), encoding="utf-8")
    return checked


def layout_problems(dom: str) -> list[str]:
    found = LAYOUT_ATTRIBUTE.search(dom)
    assert found, "the layout check did not run in the page"
    return json.loads(html.unescape(found.group(1)))


def dump_dom(browser: str, page: Path, profile: Path) -> str:
    result = subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def screenshot(browser: str, page: Path, profile: Path, png: Path) -> None:
    subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}",
         page.as_uri()],
        capture_output=True, text=True, timeout=180, check=True,
    )  # fmt: skip


def test_site_has_every_lesson_and_local_mathjax(site):
    lessons = sorted(p.stem for p in (ROOT / "lessons").glob("[0-9][0-9]_*.py"))
    assert lessons, "no lessons found in lessons/"
    for name in lessons:
        page = site / "lessons" / name / "index.html"
        assert page.is_file(), f"lesson {name} has no page in the site"
        assert "jp-Notebook" in page.read_text(encoding="utf-8")
    assert (site / "assets" / "mathjax" / "tex-svg-full.js").stat().st_size > 1_000_000
    assert (site / "assets" / "mathjax" / "LICENSE").is_file()


def test_each_lesson_has_its_notebook(site):
    """lessons/NN_name.ipynb in the site: the lesson's cells as a valid notebook, linked from it."""
    for path in sorted((ROOT / "lessons").glob("[0-9][0-9]_*.py")):
        notebook = nbformat.reads((site / "lessons" / f"{path.stem}.ipynb").read_text(), 4)
        nbformat.validate(notebook)
        lesson = jupytext.read(path)
        assert [c.source for c in notebook.cells] == [c.source for c in lesson.cells]
        page = (site / "lessons" / path.stem / "index.html").read_text(encoding="utf-8")
        assert f'href="../{path.stem}.ipynb"' in page, f"{path.stem}: no notebook download link"


def _texts_of(tag: str, page: str, attrs: dict[str, str] | None = None) -> list[str]:
    """The text inside each <tag> element of `page` that has `attrs` (nested ones included in
    their parent)."""
    parser = _ElementText(tag, attrs or {})
    parser.feed(page)
    return parser.found


class _ElementText(HTMLParser):
    def __init__(self, tag: str, attrs: dict[str, str]):
        super().__init__(convert_charrefs=True)
        self.tag, self.attrs, self.depth, self.found = tag, attrs, 0, []

    def handle_starttag(self, tag, attrs):
        if tag == self.tag:
            if self.depth == 0:
                if not self.attrs.items() <= dict(attrs).items():
                    return
                self.found.append("")
            self.depth += 1

    def handle_endtag(self, tag):
        if tag == self.tag and self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if self.depth:
            self.found[-1] += data


def stderr_outputs(page: str) -> list[str]:
    """The start of each output a lesson cell wrote to stderr, which a page shows as a red box
    (a library's warning, such as tqdm's "IProgress not found", in lessons 1, 4 and 5 once)."""
    stderr = {"data-mime-type": "application/vnd.jupyter.stderr"}
    return [" ".join(text.split())[:160] for text in _texts_of("div", page, stderr)]


def test_stderr_outputs_finds_a_warning_box():
    page = (
        '<div class="jp-OutputArea-child"><div class="jp-RenderedText jp-OutputArea-output" '
        'data-mime-type="application/vnd.jupyter.stderr"><pre>/x/auto.py:21: TqdmWarning: '
        "IProgress not found.</pre></div></div>"
        '<div class="jp-RenderedText jp-OutputArea-output" data-mime-type="text/plain">'
        "<pre>ok</pre></div>"
    )
    assert stderr_outputs(page) == ["/x/auto.py:21: TqdmWarning: IProgress not found."]


def test_lesson_pages_show_no_stderr_output(site):
    """A lesson's output is what it prints and draws: no warning box from a library."""
    found = [
        f"{path.stem}: {text}"
        for path in sorted((ROOT / "lessons").glob("[0-9][0-9]_*.py"))
        for text in stderr_outputs(
            (site / "lessons" / path.stem / "index.html").read_text(encoding="utf-8")
        )
    ]
    assert not found, "stderr output in lesson pages:\n" + "\n".join(found)


def test_navigation_and_contents_hold_no_tex(site):
    """Headings become navigation and table-of-contents entries, which MathJax leaves alone."""
    offenders = [
        f"{page.relative_to(site)}: {match}"
        for page in sorted(site.rglob("*.html"))
        for nav in _texts_of("nav", page.read_text(encoding="utf-8"))
        for match in RAW_TEX.findall(nav) + re.findall(r"\\[A-Za-z]+", nav)
    ]
    assert not offenders, "TeX in navigation or a table of contents:\n" + "\n".join(offenders[:20])


def test_no_page_shows_a_snippet_marker(site):
    """Section markers mark code for the Equations page; no rendered page may show one."""
    offenders = [
        f"{page.relative_to(site)}: {match.group(0)}"
        for page in sorted(site.rglob("*.html"))
        for article in _texts_of("article", page.read_text(encoding="utf-8"))
        for match in MARKER.finditer(article)
    ]
    assert not offenders, "snippet markers in rendered pages:\n" + "\n".join(offenders[:20])


def test_pages_load_nothing_from_the_network(site):
    """No script, stylesheet, image or font of the site comes from another host."""
    remote = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=["']?(?:https?:)?//""")
    cdn = re.compile(r"cdnjs\.cloudflare\.com|unpkg\.com|cdn\.jsdelivr\.net|fonts\.googleapis")
    offenders = [
        f"{page.relative_to(site)}: {match.group(0)}"
        for page in site.rglob("*.html")
        for pattern in (remote, cdn)
        for match in pattern.finditer(page.read_text(encoding="utf-8"))
        if 'rel="canonical"' not in match.group(0)  # the page's own address, if site_url is set
    ]
    assert not offenders, "remote resources:\n" + "\n".join(offenders[:20])


def test_equation_code_is_included_from_source(site):
    """Each included section's code appears on the built equations page (not an empty block)."""
    page = html.unescape(re.sub(r"<[^>]+>", "", (site / "equations" / "index.html").read_text()))
    for (path, section), pages in docs_includes().items():
        if "docs/equations.md" not in pages or section is None:
            continue
        text = (ROOT / path).read_text(encoding="utf-8")
        body = text.split(f"[start:{section}]", 1)[1].split(f"[end:{section}]", 1)[0]
        code_lines = [ln.strip() for ln in body.splitlines()[1:-1] if ln.strip()]
        assert code_lines, f"{path}:{section} is empty"
        assert all(line in page for line in code_lines), f"{path}:{section} not on the page"


def read_article(dom: str) -> _ArticleText:
    parser = _ArticleText()
    parser.feed(dom)
    return parser


def test_raw_tex_check_sees_untypeset_pages(site):
    """Before a browser runs MathJax, every math page holds raw TeX: the check below can fail."""
    for name, relative in MATH_PAGES.items():
        parser = read_article((site / relative).read_text(encoding="utf-8"))
        assert parser.typeset == 0
        assert RAW_TEX.search("".join(parser.text)), f"{name}: no raw TeX found before typesetting"


# One defect of each kind the layout check looks for, in an article 300 px wide, each once seen
# on the site; then the same content laid out well.
DOT = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"
DEFECTS = {
    "hidden to the right": '<pre style="white-space: pre; overflow-x: auto">final quality (1000 '
                           "samples, generator): well_formed 0.992, class_match 0.920, score 0.888"
                           "</pre>",
    "cut off at the bottom": '<pre style="height: 1.2em; overflow: hidden">done\nscore</pre>',
    "broken mid-word": '<pre style="white-space: pre-wrap; word-break: break-all">'
                       + "x = torch.Tensor(y) if flag else torch.Tensor(z) " * 6 + "</pre>",
    "diagram wrapped": '<pre style="white-space: pre-wrap">train.py main ─▶ Run.train '
                       "─▶ Run.iteration ─▶ GANStep.iteration</pre>",
    "wider than its box": f'<img alt="curves" width="600" height="20" src="{DOT}">'
                          '<div style="overflow-x: auto"><table><tr><td style="white-space: '
                          'nowrap">a table of more columns than the page has room for</td></tr>'
                          "</table></div>",
    "squashed table cell": '<table style="width: 40px"><tr><td>0.078 ± 0.023 (0.064–'
                           "0.104)</td></tr></table>",
}  # fmt: skip
WELL_LAID_OUT = (
    '<pre style="white-space: pre-wrap">x = torch.Tensor(y) if flag else torch.Tensor(z)</pre>'
    "<pre>train.py main ─▶ Run.train</pre>"
    f'<img alt="curves" width="200" height="20" src="{DOT}">'
    "<table><tr><td>0.078 ± 0.023</td></tr></table>"
)


def page_problems(body: str, folder: Path) -> list[str]:
    page = folder / "page.html"
    page.write_text(f'<!doctype html><html><head><meta charset="utf-8"></head><body>'
                    f'<article style="width: 300px; font: 16px monospace">{body}</article>'
                    "</body></html>", encoding="utf-8")  # fmt: skip
    return layout_problems(dump_dom(chromium(), with_layout_check(page), folder / "profile"))


@pytest.mark.skipif(chromium() is None, reason="needs headless Chromium: apt-get install chromium")
def test_layout_check_finds_each_kind_of_defect(tmp_path):
    problems = page_problems("".join(DEFECTS.values()), tmp_path)
    missed = [kind for kind in DEFECTS if not any(p.startswith(kind) for p in problems)]
    assert not missed, f"the layout check missed {missed}; it found {problems}"
    assert sum(p.startswith("wider than its box") for p in problems) == 2  # the img and the table
    assert page_problems(WELL_LAID_OUT, tmp_path) == []


@pytest.mark.skipif(chromium() is None, reason="needs headless Chromium: apt-get install chromium")
@pytest.mark.parametrize("name", BROWSER_PAGES)
def test_page_lays_out_and_typesets_offline_in_a_browser(site, name, tmp_path):
    page = site / BROWSER_PAGES[name]
    dom = dump_dom(chromium(), with_layout_check(page), tmp_path / "profile")
    problems = layout_problems(dom)
    assert not problems, f"{name}: code or tables not shown whole:\n" + "\n".join(problems[:10])
    parser = read_article(dom)
    text = "".join(parser.text)
    if name in MATH_PAGES:
        assert parser.typeset > 0, f"{name}: no formula typeset by MathJax"
    assert parser.errors == 0, f"{name}: MathJax reported {parser.errors} TeX errors"
    raw = RAW_TEX.findall(text)
    assert not raw, f"{name}: raw TeX left untypeset: {raw[:5]}"

    png = tmp_path / f"{name}.png"
    screenshot(chromium(), page, tmp_path / "profile", png)
    assert png.stat().st_size > 10_000  # a rendered page, not a blank one
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(png, SCREENSHOT_DIR / png.name)
