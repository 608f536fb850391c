r"""The built-in data set, *Mirror twins*: generated, deterministic, with an exact quality score.

Every image is an $R \times R$ black picture holding **two copies of one shape**, one in the left
half and one in the right half, placed as mirror images of each other about the vertical centre
line:

- the **class** decides the shape: `ring`, `plus`, `cross` or `block` (all four are
  left-right symmetric, so a mirrored copy is the same shape);
- the **colour** is drawn at random from six saturated colours, *independently of the class*;
- the **row** and the **distance from the outer edge** are drawn at random.

So the two objects must agree on colour and on position, and nothing local tells a generator which
colour or row the other half chose: the objects' centres are $R - 2x - s$ pixels apart ($x$ the
distance from the outer edge, $s$ the object width), i.e. 7 to 9 pixels at $R = 16$, about half
the image, and a convolution whose receptive field does not span both sees only one of them.
This is the long-range structure self-attention is for.
Objects are $s = \lfloor 5R/16 \rfloor$ pixels wide (5 px at $R = 16$, 10 px at $R = 32$), drawn
with strokes $\max(1, \lfloor s/5 \rfloor)$ pixels wide, with at least one pixel of margin to the
image border and to the centre line.

## The quality measure

Because every real image is drawn from a known recipe, a generated image can be *decoded* exactly:
in each half, the foreground is the set of pixels whose brightest channel is above 0 (the midpoint
of $[-1, 1]$); its bounding box must be $s \times s$; the mask inside it is matched against the four
templates (pixel accuracy $\ge 0.85$); its mean colour must lie within $0.5$ (in every channel) of a
palette colour; the background must be dark (mean distance to $-1$ below $0.25$).
`quality(images, labels)` returns fractions of the batch:

| key | a sample counts when |
|---|---|
| `well_formed` | both halves decode to one palette-coloured template shape on a dark background |
| `class_match` | well formed, and both shapes are the shape of the requested class |
| `agreement` | well formed, and the halves agree: same shape, same colour, mirrored position |
| `score` | `class_match` and `agreement` both hold (a fully correct sample) |
| `diversity` | see below |

`diversity` is the number of distinct (class, colour, row, column) among the correct samples,
divided by the number expected from real data with the same class counts (capped at 1): low for
a generator that repeats a few images, however good they are.

Real data scores 1.0 on the first four and about 1.0 on `diversity`; uniform noise scores 0;
halves taken from two different real images agree by chance about once in a hundred (same colour,
row and column); a generator repeating one image scores about $1/4$ on `class_match` and near 0 on
`diversity`.
"""

from __future__ import annotations

import numpy as np

CLASS_NAMES = ("ring", "plus", "cross", "block")
# Six saturated colours (uint8 RGB); each has a channel at 255, so its brightest channel is 1.0.
PALETTE = np.array(
    [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 0, 255], [0, 255, 255]],
    dtype=np.uint8,
)
DEFAULT_SIZE = 10_000
SHAPE_ACCURACY = 0.85
COLOUR_TOLERANCE = 0.5
BACKGROUND_TOLERANCE = 0.25


def object_size(resolution: int) -> int:
    r"""Width $s = \lfloor 5R/16 \rfloor$ of each object; raises ValueError for unusable R."""
    if resolution < 16 or resolution % 8:
        raise ValueError(
            f"the built-in data set needs a resolution that is a multiple of 8 and at least 16, "
            f"got {resolution}: use e.g. 16, 24 or 32"
        )
    return 5 * resolution // 16


def templates(resolution: int) -> np.ndarray:
    """The class shapes at this resolution: bool (num_classes, s, s), strokes max(1, s // 5) wide.

    Built from distances on the pixel grid, so each shape is symmetric (left-right and up-down)."""
    s = object_size(resolution)
    w = max(1, s // 5)  # stroke width
    i = np.arange(s)
    edge = np.minimum(i, s - 1 - i)  # distance to the nearest border of the box
    centre = np.abs(2 * i - (s - 1))  # twice the distance to the centre line
    ring = (edge[:, None] < w) | (edge[None, :] < w)
    plus = (centre[:, None] < w) | (centre[None, :] < w)
    cross = (np.abs(i[:, None] - i[None, :]) < w) | (np.abs(i[:, None] + i[None, :] - s + 1) < w)
    block = np.ones((s, s), dtype=bool)
    return np.stack([ring, plus, cross, block])


def _positions(resolution: int) -> tuple[int, int]:
    """Numbers of possible rows and columns for the left object (1 px margin to edge and centre)."""
    s = object_size(resolution)
    return resolution - s - 1, resolution // 2 - s - 1


def generate(n: int, resolution: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Draw `n` images: uint8 (n, R, R, 3) and int64 labels (n,), balanced classes, from `seed`."""
    s = object_size(resolution)
    shapes = templates(resolution)  # (K, s, s)
    n_rows, n_cols = _positions(resolution)
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(CLASS_NAMES)).astype(np.int64)
    colours = rng.integers(len(PALETTE), size=n)
    rows = 1 + rng.integers(n_rows, size=n)
    cols = 1 + rng.integers(n_cols, size=n)
    images = np.zeros((n, resolution, resolution, 3), dtype=np.uint8)
    half = resolution // 2
    for i in range(n):
        box = images[i, rows[i] : rows[i] + s, cols[i] : cols[i] + s]
        box[shapes[labels[i]]] = PALETTE[colours[i]]
    images[:, :, half:] = images[:, :, :half][:, :, ::-1]  # the mirror twin
    return images, labels


def _decode_half(x: np.ndarray, s: int, shapes: np.ndarray) -> dict[str, np.ndarray]:
    """Decode the object in one half-image: x float (B, R, W, 3) in [-1, 1]."""
    B, R, W, _ = x.shape
    fg = x.max(axis=-1) > 0  # (B, R, W)
    rows_on, cols_on = fg.any(axis=2), fg.any(axis=1)  # (B, R), (B, W)
    top, left = rows_on.argmax(axis=1), cols_on.argmax(axis=1)
    height = R - rows_on[:, ::-1].argmax(axis=1) - top
    width = W - cols_on[:, ::-1].argmax(axis=1) - left
    boxed = rows_on.any(axis=1) & (height == s) & (width == s)
    # Crop the s x s box (clipped, so malformed samples index safely): (B, s, s).
    r = np.minimum(top[:, None] + np.arange(s), R - 1)
    c = np.minimum(left[:, None] + np.arange(s), W - 1)
    crop = fg[np.arange(B)[:, None, None], r[:, :, None], c[:, None, :]]
    accuracy = (crop[:, None] == shapes[None]).mean(axis=(2, 3))  # (B, K)
    shape = accuracy.argmax(axis=1)
    # Mean foreground colour, nearest palette colour (in [-1, 1]).
    count = np.maximum(fg.sum(axis=(1, 2)), 1)[:, None]
    colour = (x * fg[..., None]).sum(axis=(1, 2)) / count  # (B, 3)
    palette = PALETTE.astype(np.float64) / 127.5 - 1
    error = np.abs(colour[:, None] - palette[None]).max(axis=2)  # (B, P)
    ok = boxed & (accuracy.max(axis=1) >= SHAPE_ACCURACY) & (error.min(axis=1) < COLOUR_TOLERANCE)
    background = np.where(fg, 0.0, x.max(axis=-1) + 1).sum(axis=(1, 2))
    background /= np.maximum((~fg).sum(axis=(1, 2)), 1)
    return {
        "ok": ok,
        "dark": background < BACKGROUND_TOLERANCE,
        "shape": shape,
        "colour": error.argmin(axis=1),
        "row": top,
        "col": left,
    }


def _expected_distinct(class_counts: np.ndarray, configurations: int) -> float:
    r"""Expected number of distinct configurations among $n_c$ uniform draws per class:
    $\sum_c K (1 - (1 - 1/K)^{n_c})$ with $K$ configurations per class."""
    K = configurations
    return float(np.sum(K * (1 - (1 - 1 / K) ** class_counts)))


def quality(images, labels) -> dict[str, float]:
    """Exact offline quality of samples: float (B, 3, R, R) in [-1, 1] (NumPy or torch) and labels
    (B,). Returns the fractions described in the module docstring."""
    x = np.asarray(images.detach().cpu() if hasattr(images, "detach") else images, np.float64)
    y = np.asarray(labels.detach().cpu() if hasattr(labels, "detach") else labels).astype(np.int64)
    if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != x.shape[3] or y.shape != x.shape[:1]:
        raise ValueError(
            f"quality() needs images (B, 3, R, R) and labels (B,), got {x.shape} and {y.shape}"
        )
    R = x.shape[2]
    s, shapes = object_size(R), templates(R)
    x = x.transpose(0, 2, 3, 1)  # (B, R, R, 3)
    a = _decode_half(x[:, :, : R // 2], s, shapes)
    b = _decode_half(x[:, :, R // 2 :][:, :, ::-1], s, shapes)  # mirrored: same coordinates
    well_formed = a["ok"] & b["ok"] & a["dark"] & b["dark"]
    class_match = well_formed & (a["shape"] == y) & (b["shape"] == y)
    same = [a[key] == b[key] for key in ("shape", "colour", "row", "col")]
    agreement = well_formed & np.logical_and.reduce(same)
    correct = class_match & agreement
    configs = {(y[i], a["colour"][i], a["row"][i], a["col"][i]) for i in np.flatnonzero(correct)}
    n_rows, n_cols = _positions(R)
    counts = np.bincount(y[(y >= 0) & (y < len(CLASS_NAMES))], minlength=len(CLASS_NAMES))
    expected = _expected_distinct(counts, len(PALETTE) * n_rows * n_cols)
    return {
        "well_formed": float(well_formed.mean()),
        "class_match": float(class_match.mean()),
        "agreement": float(agreement.mean()),
        "score": float(correct.mean()),
        "diversity": min(1.0, len(configs) / expected) if expected else 0.0,
    }


def example_grid(resolution: int = 16, columns: int = 8, scale: int = 6, seed: int = 0):
    """A Pillow image of real examples: one row per class, pixels enlarged `scale` times."""
    from PIL import Image

    images, labels = generate(columns * len(CLASS_NAMES) * 4, resolution, seed)
    rows = [images[labels == k][:columns] for k in range(len(CLASS_NAMES))]
    cell, gap = resolution * scale, 2
    size = (columns * (cell + gap) + gap, len(rows) * (cell + gap) + gap)
    grid = Image.new("RGB", size, (128, 128, 128))
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            tile = Image.fromarray(image).resize((cell, cell), Image.Resampling.NEAREST)
            grid.paste(tile, (gap + c * (cell + gap), gap + r * (cell + gap)))
    return grid


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Save a grid of built-in examples.")
    parser.add_argument("out", help="PNG file to write")
    parser.add_argument("--resolution", type=int, default=16)
    args = parser.parse_args()
    example_grid(args.resolution).save(args.out)
