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
    (tmp_path / "r.json").write_text(
        json.dumps({"a": {"b": 0.12345}, "runs": [{"s": 7}], "twin/G8": 0.5})
    )
    assert figures.render("x {{ r.json:a.b:.2f }} y {{r.json:runs.0.s}}") == "x 0.12 y 7"
    assert figures.render("{{ r.json:twin/G8:.0% }}") == "50%"
    with pytest.raises(KeyError, match=r"no 'a\.c'"):
        figures.render("{{ r.json:a.c }}")
    with pytest.raises(KeyError, match="no result file"):
        figures.render("{{ missing.json:a }}")
    figures._load.cache_clear()


def test_render_reads_toml_presets_and_writes_exponents_short(tmp_path, monkeypatch):
    monkeypatch.setattr(figures, "ROOT", tmp_path)
    figures._load.cache_clear()
    (tmp_path / "p.toml").write_text("[optim]\nlr_d = 8e-4\n[run]\nsteps = 5000\n")
    assert figures.render("D {{ p.toml:optim.lr_d:.0e }}, {{ p.toml:run.steps:,d }} steps") == (
        "D 8e-4, 5,000 steps"
    )
    assert figures.render("{{ p.toml:optim.lr_d:.1e }} {{ p.toml:optim.lr_d }}") == "8.0e-4 0.0008"
    with pytest.raises(KeyError, match=r"no 'optim\.lr_g'"):
        figures.render("{{ p.toml:optim.lr_g }}")
    figures._load.cache_clear()


@pytest.mark.parametrize("name, text", [("bad.toml", "[optim\nlr = 1"), ("bad.json", "{1: 2")])
def test_a_malformed_result_file_is_named_not_a_traceback(tmp_path, monkeypatch, name, text):
    monkeypatch.setattr(figures, "ROOT", tmp_path)
    figures._load.cache_clear()
    (tmp_path / name).write_text(text)
    with pytest.raises(KeyError, match=f"{name} is not valid"):
        figures.render(f"{{{{ {name}:a }}}}")
    figures._load.cache_clear()


def test_training_page_reads_the_presets_learning_rates_from_the_preset():
    """It once said the built-in preset trains at 4e-4 and 1e-4, where the preset set 8e-4 and
    2e-4: the page now renders them from the preset file."""
    text = (ROOT / "docs/training.md").read_text(encoding="utf-8")
    step = text.split("## What one step does", 1)[1].split("\n## ", 1)[0]
    for key in ("lr_d", "lr_g"):
        assert f"{{{{ accelerated/presets/builtin.toml:optim.{key}:.0e }}}}" in step, key
