r"""The panels of a figure saved as one row of plots (a run's `curves.png`), cut apart so that a
page can show them in several rows at a readable size.

A panel is found by its frame: the left and right spines of a Matplotlib axes are the only
near-black columns that run along most of the figure's height. Each cut falls on the first
blank column after a panel's right spine, so the tick labels on either side stay whole.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np

DARK = 0.3  # a channel value (0 to 1) below which, in every channel, a pixel counts as a spine
SPINE = 0.5  # share of the figure's height a column must fill with dark pixels to be a spine
BLANK = 0.95  # a column is blank when every pixel of it is at least this light


def _runs(columns: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) of each run of consecutive True entries of a bool vector."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], columns.astype(np.int8), [0]])))
    return list(zip(edges[::2], edges[1::2] - 1, strict=True))


def split_panels(image: np.ndarray) -> list[np.ndarray]:
    """The panels of a one-row figure, left to right: image (H, W, 3 or 4), floats in [0, 1]
    (as `matplotlib.pyplot.imread` reads a PNG) -> a list of (H, w_k, C) slices of it.
    ValueError when the image holds no framed panel."""
    rgb = np.asarray(image)[..., :3]
    height = rgb.shape[0]
    spine = (rgb < DARK).all(axis=-1).sum(axis=0) >= SPINE * height  # (W,)
    spines = [first for first, _ in _runs(spine)]
    if len(spines) < 2 or len(spines) % 2:
        raise ValueError(f"found {len(spines)} axes spines, expected a pair per panel")
    blank = (rgb >= BLANK).all(axis=-1).all(axis=0)  # (W,)
    cuts = [0]
    for right in spines[1:-1:2]:  # the right spine of every panel but the last
        cuts.append(right + int(np.argmax(blank[right:])))
    cuts.append(rgb.shape[1])
    return [image[:, a:b] for a, b in pairwise(cuts)]
