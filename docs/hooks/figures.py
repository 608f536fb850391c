"""MkDocs hook: every figure a page quotes is read from a committed result file at build time.

A page writes `{{ path/to/results.json:key.subkey:.3f }}` where it quotes a number: the path is
relative to the repository root, the key is a dotted path into the JSON (list items by index),
and the optional last part is a Python format spec (`.3f`, `.0%`, `,d`). The build replaces it
with the formatted value, so a page cannot drift from the run that measured it; a missing file
or key fails the build, naming the page and the reference. `tests/test_docs_figures.py` checks
every reference of every page without building the site.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = re.compile(r"\{\{\s*([\w./-]+\.json):([\w./-]+?)(?::([^}\s]*))?\s*\}\}")


@cache
def _load(path: str) -> object:
    return json.loads((ROOT / path).read_text())


def value(path: str, key: str) -> object:
    """The value at dotted `key` of the JSON file `path`; KeyError says what is missing."""
    try:
        found = _load(path)
    except FileNotFoundError:
        raise KeyError(f"no result file {path}") from None
    for part in key.split("."):
        try:
            found = found[int(part)] if isinstance(found, list) else found[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise KeyError(f"{path} has no {key!r} (stopped at {part!r})") from None
    return found


def render(text: str) -> str:
    """`text` with every `{{ file.json:key:format }}` replaced by the formatted value."""
    return REFERENCE.sub(lambda m: format(value(m[1], m[2]), m[3] or ""), text)


def on_page_markdown(markdown, page, config, files):
    try:
        return render(markdown)
    except (KeyError, ValueError) as err:
        raise PluginError(f"{page.file.src_uri}: {err}") from None
