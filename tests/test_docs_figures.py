"""Figures quoted on the course site and in the README come from the committed result files.

Pages quote a measured figure as `{{ file.json:key:format }}`, which the docs hook
(`docs/hooks/figures.py`) renders at build time; here every such reference is resolved without a
site build. The README is read raw on GitHub, so its quoted figures are checked against their
files instead.
"""

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted(ROOT.glob("docs/**/*.md"))
_spec = importlib.util.spec_from_file_location("figures", ROOT / "docs" / "hooks" / "figures.py")
figures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(figures)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_quoted_figure_resolves(page):
    text = page.read_text(encoding="utf-8")
    rendered = figures.render(text)  # raises on a missing file, key or a bad format
    assert "{{" not in re.sub(r"```.*?```", "", rendered, flags=re.DOTALL), "unrendered {{ }}"


def test_render_formats_values_and_names_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(figures, "ROOT", tmp_path)
    figures._load.cache_clear()
    (tmp_path / "r.json").write_text(json.dumps({"a": {"b": 0.12345}, "runs": [{"s": 7}],
                                                 "twin/G8": 0.5}))
    assert figures.render("x {{ r.json:a.b:.2f }} y {{r.json:runs.0.s}}") == "x 0.12 y 7"
    assert figures.render("{{ r.json:twin/G8:.0% }}") == "50%"
    with pytest.raises(KeyError, match=r"no 'a\.c'"):
        figures.render("{{ r.json:a.c }}")
    with pytest.raises(KeyError, match="no result file"):
        figures.render("{{ missing.json:a }}")
    figures._load.cache_clear()


def default_run_sentence() -> str:
    """The README's sentence of the default run's figures, from their results file."""
    runs = json.loads((ROOT / "benchmarks/results/default-run/seeds.json").read_text())["runs"]
    seeds = sorted(runs, key=int)

    def values(key: str, spec: str) -> str:
        return ", ".join(format(runs[seed][key], spec) for seed in seeds)

    return (f"seeds {', '.join(seeds)}: score {values('score', '.2f')}; diversity "
            f"{values('diversity', '.2f')}; wall time {values('wall_minutes', '.1f')} min")


def test_readme_quotes_the_default_runs_figures_from_their_file():
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert default_run_sentence() in readme
