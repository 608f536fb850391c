"""The course shows each equation next to the code that computes it, included by name.

Source files mark sections with `# --8<-- [start:NAME]` ... `# --8<-- [end:NAME]` (`//` in CUDA);
the docs include them with `--8<-- "path:NAME"` (pymdownx.snippets). These checks read files only
(no site build): every section the docs include exists, every section in the source is shown,
markers are balanced, and each equation of the paper has code in both `reference/` (NumPy) and
`accelerated/` (PyTorch).
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE_GLOBS = ("reference/**/*.py", "accelerated/**/*.py", "accelerated/**/*.cu",
                "accelerated/**/*.cuh")  # fmt: skip
DOCS_GLOB = "docs/**/*.md"
# pymdownx.snippets' section marker (names start with a letter); `;--8<--` escapes a marker.
MARKER = re.compile(
    r"(?<![;-])-+8<-+[ \t]+\[[ \t]*(start|end)[ \t]*:[ \t]*([a-z][-_0-9a-z]*)[ \t]*\]",
    re.IGNORECASE,
)
# An include line in Markdown: --8<-- "path" or --8<-- "path:section".
INCLUDE = re.compile(r'^[ \t]*-+8<-+[ \t]+"([^"]+)"', re.MULTILINE)
# The paper's symbols as the code names them: a tab that shows an equation in PyTorch must name
# every one that its NumPy tab names (eq. (1) once showed the scores without W_f, W_g or the pool).
PAPER_SYMBOLS = re.compile(r"\b(W_f|W_g|W_h|W_v|W_SN|gamma|beta|sigma|pool)\b")
EQUATIONS_PAGE = "docs/equations.md"
# Every equation of the paper that the course must show in NumPy and in PyTorch.
EQUATIONS = ("eq1-scores", "eq1-softmax", "eq2-output", "eq3-residual", "eq4-d-loss",
             "eq4-g-loss", "sn-power-iteration", "sn-normalise", "ttur")  # fmt: skip


def parse_sections(text: str) -> tuple[set[str], list[str]]:
    """The section names marked in `text`, and what is wrong with its markers (if anything)."""
    names, problems, open_at = set(), [], {}
    for number, line in enumerate(text.splitlines(), start=1):
        for kind, name in MARKER.findall(line):
            if kind == "start":
                if name in open_at:
                    problems.append(f"line {number}: [start:{name}] while it is already open")
                elif name in names:
                    problems.append(f"line {number}: section {name!r} is marked twice")
                open_at[name] = number
                names.add(name)
            elif open_at.pop(name, None) is None:
                problems.append(f"line {number}: [end:{name}] without a [start:{name}] before it")
    problems += [f"line {line}: [start:{name}] is never ended" for name, line in open_at.items()]
    return names, problems


def source_files() -> list[Path]:
    return sorted({path for pattern in SOURCE_GLOBS for path in ROOT.glob(pattern)})


def source_sections() -> dict[tuple[str, str], Path]:
    """(path relative to the repository, section name) for every marked section."""
    sections = {}
    for path in source_files():
        names, _ = parse_sections(path.read_text(encoding="utf-8"))
        rel = path.relative_to(ROOT).as_posix()
        sections.update({(rel, name): path for name in names})
    return sections


def docs_includes() -> dict[tuple[str, str | None], list[str]]:
    """(path, section or None for a whole file) that the docs include -> the including pages."""
    includes: dict[tuple[str, str | None], list[str]] = {}
    for page in sorted(ROOT.glob(DOCS_GLOB)):
        for target in INCLUDE.findall(page.read_text(encoding="utf-8")):
            path, _, section = target.partition(":")
            key = (path, section or None)
            includes.setdefault(key, []).append(page.relative_to(ROOT).as_posix())
    return includes


def test_parser_finds_unbalanced_markers():
    good = "# --8<-- [start:a]\nx = 1\n# --8<-- [end:a]\n// --8<-- [start:b]\n// --8<-- [end:b]\n"
    assert parse_sections(good) == ({"a", "b"}, [])
    assert parse_sections(";--8<-- [start:a]\n") == (set(), [])  # escaped: not a marker
    broken = "# --8<-- [start:a]\n# --8<-- [end:b]\n# --8<-- [start:c]\n# --8<-- [start:c]\n"
    names, problems = parse_sections(broken)
    assert names == {"a", "c"}
    assert len(problems) == 4  # b ends unopened, c reopened, a and c never ended
    _, problems = parse_sections("# --8<-- [start:a]\n# --8<-- [end:a]\n# --8<-- [start:a]\n")
    assert problems and "marked twice" in problems[0]


def test_include_pattern_reads_paths_and_sections():
    page = '=== "NumPy"\n\n    ```python\n    --8<-- "reference/hinge.py:eq4-d-loss"\n    ```\n'
    assert INCLUDE.findall(page) == ["reference/hinge.py:eq4-d-loss"]


@pytest.mark.parametrize("path", source_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_source_markers_are_balanced(path):
    _, problems = parse_sections(path.read_text(encoding="utf-8"))
    assert not problems, f"{path.relative_to(ROOT)}: " + "; ".join(problems)


def test_every_included_section_exists():
    sections = source_sections()
    missing = []
    for (path, section), pages in docs_includes().items():
        if not (ROOT / path).is_file():
            missing.append(f"{path} (included by {', '.join(pages)}) does not exist")
        elif section is not None and (path, section) not in sections:
            missing.append(f"{path} has no section {section!r} (included by {', '.join(pages)})")
    assert not missing, "the docs include code that is not there:\n" + "\n".join(missing)


def test_every_source_section_is_shown_in_the_docs():
    includes = docs_includes()
    whole_files = {path for path, section in includes if section is None}  # shows every section
    unused = sorted(f"{p}:{name}" for p, name in source_sections()
                    if (p, name) not in includes and p not in whole_files)  # fmt: skip
    assert not unused, (
        "sections marked in the source but shown on no docs page (include them, e.g. in "
        "docs/equations.md, or remove the markers):\n" + "\n".join(unused)
    )


@pytest.mark.parametrize("equation", EQUATIONS)
def test_equation_has_numpy_and_pytorch_code(equation):
    paths = [path for path, name in source_sections() if name == equation]
    assert any(p.startswith("reference/") for p in paths), f"no NumPy code marked {equation!r}"
    assert any(p.startswith("accelerated/") for p in paths), f"no PyTorch code marked {equation!r}"


def section_code(path: str, name: str | None = None) -> str:
    """The lines between `[start:name]` and `[end:name]` in `path` (markers excluded); the whole
    file where no section is named."""
    text = (ROOT / path).read_text(encoding="utf-8")
    if name is None:
        return text
    body = text.split(f"[start:{name}]", 1)[1].split(f"[end:{name}]", 1)[0]
    return "\n".join(body.splitlines()[1:-1])


def tab_includes(markdown: str) -> dict[str, dict[str, list[str]]]:
    """heading -> tab title -> the snippets included in that tab (`=== "NumPy"` blocks)."""
    found: dict[str, dict[str, list[str]]] = {}
    heading, tab = None, None
    for line in markdown.splitlines():
        if line.startswith("#"):
            heading, tab = line.lstrip("# ").strip(), None
        elif tabbed := re.match(r'=== "([^"]+)"', line):
            tab = tabbed.group(1)
        elif line.strip() and not line.startswith(" "):
            tab = None  # unindented text ends the tabs
        elif tab is not None:
            for target in INCLUDE.findall(line):
                found.setdefault(heading, {}).setdefault(tab, []).append(target)
    return found


def test_tab_includes_reads_tabs():
    page = (
        '### Eq\n\n=== "NumPy"\n\n    ```python\n    --8<-- "a.py:x"\n    ```\n\n'
        '=== "PyTorch"\n\n    ```python\n    --8<-- "b.py:y"\n    --8<-- "b.py:z"\n    ```\n\n'
        'Text.\n\n```python\n--8<-- "c.py:w"\n```\n'
    )
    assert tab_includes(page) == {"Eq": {"NumPy": ["a.py:x"], "PyTorch": ["b.py:y", "b.py:z"]}}


def test_pytorch_tabs_show_what_numpy_tabs_show():
    """Where an equation has a NumPy and a PyTorch tab, the PyTorch code names every paper symbol
    (W_f, gamma, sigma, ...) that the NumPy code names: it computes the whole equation too."""
    short = []
    for heading, tabs in tab_includes((ROOT / EQUATIONS_PAGE).read_text(encoding="utf-8")).items():
        if not {"NumPy", "PyTorch"} <= tabs.keys():
            continue
        named = {
            tab: {s for t in tabs[tab] for s in PAPER_SYMBOLS.findall(section_code(*t.split(":")))}
            for tab in ("NumPy", "PyTorch")
        }
        if missing := sorted(named["NumPy"] - named["PyTorch"]):
            short.append(f"{heading}: the PyTorch tab never names {', '.join(missing)}")
    assert not short, "PyTorch tabs showing less than NumPy ones:\n" + "\n".join(short)


def test_spectral_norm_pytorch_tab_shows_what_trains_the_model():
    """The power iteration's PyTorch tab includes the module whose parametrization normalises
    the models' weights (it once showed accelerated/ops/spectral_norm.py, which training never
    calls)."""
    from torch.nn.utils import parametrize

    from accelerated.models import ModelConfig, build_models

    G, D = build_models(ModelConfig(resolution=16, num_classes=4, g_ch=8, d_ch=8))
    modules = {
        type(m.parametrizations.weight[0]).__module__
        for net in (G, D)
        for m in net.modules()
        if parametrize.is_parametrized(m, "weight")
    }
    assert modules, "the models have no spectrally normalised layer"
    tab = tab_includes((ROOT / EQUATIONS_PAGE).read_text(encoding="utf-8"))["Power iteration"]
    shown = {target.partition(":")[0] for target in tab["PyTorch"]}
    assert {m.replace(".", "/") + ".py" for m in modules} <= shown, (modules, shown)
