"""Output a notebook keeps folded until the reader opens it: the answer to a "predict, then run"
exercise, computed when the page is built, shown only when asked for.

    with hidden_output():
        print(answer)

prints nothing while the block runs, then shows what was printed inside an HTML
`<details>` block (closed) with `summary` as its title. Outside a notebook (no IPython), the text
is printed after the summary, as it would have been.
"""

from __future__ import annotations

import contextlib
import html
import io
from collections.abc import Iterator

SUMMARY = "Output: open it once you have written down your prediction"


@contextlib.contextmanager
def hidden_output(summary: str = SUMMARY) -> Iterator[None]:
    """Capture what the block prints; show it folded under `summary` when the block ends."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        yield
    text = buffer.getvalue()
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
    except ImportError:
        get_ipython = None
    if get_ipython is None or get_ipython() is None:
        print(f"{summary}\n{text}", end="")
        return
    display(HTML(f"<details><summary>{html.escape(summary)}</summary>\n"
                 f"<pre>{html.escape(text)}</pre>\n</details>"))  # fmt: skip
