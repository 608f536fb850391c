"""MkDocs hook: every figure a page quotes is read from a committed file at build time.

A page writes `{{ path/to/results.json:key.subkey:.3f }}` where it quotes a number: the path is
relative to the repository root, the key is a dotted path into the file (list items by index),
and the optional last part is a Python format spec (`.3f`, `.0%`, `,d`, `.0e`). The file is a
result JSON, or a TOML file such as a training preset (`accelerated/presets/builtin.toml`), so a
setting the page quotes (a learning rate, a step count) is the one the preset trains with. The
build replaces the reference with the formatted value, so a page cannot drift from the run that
measured it or the preset that sets it; a missing file or key fails the build, naming the page
and the reference. An exponent is written short, as in the presets (`8e-4`, not `8e-04`).
`tests/test_docs_figures.py` checks every reference of every page without building the site.
"""

from __future__ import annotations

import json
import re
import tomllib
from functools import cache
from pathlib import Path

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = re.compile(r"\{\{\s*([\w./-]+\.(?:json|toml)):([\w./-]+?)(?::([^}\s]*))?\s*\}\}")
EXPONENT = re.compile(r"e([+-])0*(\d)")  # 8e-04 -> 8e-4


@cache
def _load(path: str) -> object:
    text = (ROOT / path).read_text(encoding="utf-8")
    return tomllib.loads(text) if path.endswith(".toml") else json.loads(text)


def value(path: str, key: str) -> object:
    """The value at dotted `key` of the JSON or TOML file `path`; KeyError says what is missing."""
    try:
        found = _load(path)
    except FileNotFoundError:
        raise KeyError(f"no result file {path}") from None
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
        raise KeyError(f"{path} is not valid {path.rsplit('.', 1)[1].upper()}: {err}") from None
    for part in key.split("."):
        try:
            found = found[int(part)] if isinstance(found, list) else found[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise KeyError(f"{path} has no {key!r} (stopped at {part!r})") from None
    return found


def render(text: str) -> str:
    """`text` with every `{{ file.json:key:format }}` replaced by the formatted value."""
    return REFERENCE.sub(lambda m: _format(value(m[1], m[2]), m[3] or ""), text)


def _format(found: object, spec: str) -> str:
    text = format(found, spec)
    if isinstance(found, float):
        text = EXPONENT.sub(lambda m: f"e{'-' if m[1] == '-' else ''}{m[2]}", text)
    return text


def on_page_markdown(markdown, page, config, files):
    try:
        return render(markdown)
    except (KeyError, ValueError) as err:
        raise PluginError(f"{page.file.src_uri}: {err}") from None
