"""What a learner reads, checked from the files (no site build).

No page or lesson shows a placeholder ("to be measured", "TODO"): where a figure does not exist
yet, the page says what was measured where and keeps the plan in a section for practitioners.
Each section of the Equations page ends with the lesson that runs its equations.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted(
    [ROOT / "README.md", *ROOT.glob("docs/**/*.md"), *ROOT.glob("lessons/[0-9][0-9]_*.py")]
)
PLACEHOLDER = re.compile(
    r"placeholder|to be measured|not measured yet|will replace this|\bTODO\b|\bTBD\b|\bFIXME\b",
    re.IGNORECASE,
)
LESSON_LINK = re.compile(r"\]\((lessons/[0-9][0-9]_\w+\.py)\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_page_shows_no_placeholder(page):
    found = [
        f"line {number}: {line.strip()}"
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1)
        if PLACEHOLDER.search(line)
    ]
    assert not found, "placeholder text in a page a learner reads:\n" + "\n".join(found)


def equations_sections() -> dict[str, str]:
    """The Equations page's `## ` sections: heading -> text up to the next `## `."""
    text = (ROOT / "docs" / "equations.md").read_text(encoding="utf-8")
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_equations_page_has_sections():
    assert {
        "Self-attention",
        "Spectral normalisation",
        "Architecture",
    } <= equations_sections().keys()


@pytest.mark.parametrize("heading", equations_sections())
def test_each_equation_section_links_the_lesson_that_runs_it(heading):
    body = equations_sections()[heading]
    run_it = [line for line in body.split("\n\n") if line.startswith("Run it:")]
    assert run_it, f"section {heading!r} has no 'Run it: [Lesson N](lessons/...)' paragraph"
    links = LESSON_LINK.findall(" ".join(run_it))
    assert links, f"section {heading!r}: its 'Run it' paragraph links no lesson"
    for link in links:
        assert (ROOT / link).is_file(), f"section {heading!r} links {link}, which does not exist"
