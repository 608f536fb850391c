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

Because every real image is drawn from a known recipe, a generated image can be *decoded* by
finding the real configuration nearest to it. In each half (the right half mirrored), with
brightness $b_p = \max_c x_{p,c}$ per pixel:

1. **placement**: among every (shape, row, column) a real object can have, rendered as
   $m \in \{-1, 1\}^P$ over the $P$ pixels of the half, take the one nearest in squared distance,
   $\arg\min_m \lVert b - m \rVert^2 = \arg\max_m b \cdot m$;
2. **shape check**: the lit pixels, $b_p > -0.25$ (`LIT`: 3/8 of the way from black to full
   colour), must overlap that placement with intersection-over-union at least `MIN_IOU` (0.5),
   so stray blobs, missing strokes, noise or an empty half fail (a mild blur passes);
3. **colour**: the mean colour over the placed shape must light exactly the channels of one of
   the six palette colours (a channel is lit when above the midpoint between $-1$ and the
   brightest channel, so a dim or blurred colour still reads as itself);
4. **background**: the mean brightness outside the shape must be within `BACKGROUND_TOLERANCE`
   (0.5) of $-1$.

`quality(images, labels)` returns fractions of the batch:

| key | a sample counts when |
|---|---|
| `well_formed` | both halves pass the shape, colour and background checks |
| `class_match` | well formed, and both shapes are the shape of the requested class |
| `agreement` | well formed, and the halves agree: same shape, same colour, mirrored position |
| `score` | `class_match` and `agreement` both hold (a fully correct sample) |
| `diversity` | see below |
| `symmetry` | (not a fraction) mean correlation of the left half with the mirrored right half |

`diversity` is the number of distinct (class, colour, row, column) among the correct samples,
divided by the number expected from real data with the same class counts (capped at 1): low for
a generator that repeats a few images, however good they are.

`symmetry` has no thresholds: it is the Pearson correlation between the left half and the
mirrored right half, averaged over the batch (0 for a flat half). It is 1 for real data and about
0 when the halves are independent, so it shows a generator learning the long-range agreement
before its shapes are clean enough to count in `agreement`.

Real data scores 1.0 on the first four and about 1.0 on `diversity`; uniform noise, blank or grey
images score 0; halves taken from two different real images agree by chance in under 1% of
samples; a generator repeating one image scores about $1/4$ on `class_match` and near 0 on
`diversity`. Resolutions: multiples of 8 from 16 to 64 (`quality` compares each half with every
possible placement, which grows as $R^4$).
"""

from __future__ import annotations

import functools

import numpy as np

CLASS_NAMES = ("ring", "plus", "cross", "block")
# Six saturated colours (uint8 RGB); each has a channel at 255, so its brightest channel is 1.0.
PALETTE = np.array(
    [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 0, 255], [0, 255, 255]],
    dtype=np.uint8,
)
DEFAULT_SIZE = 10_000
MIN_IOU = 0.5
LIT = -0.25  # a pixel is lit when its brightest channel is 3/8 of the way up from black
BACKGROUND_TOLERANCE = 0.5
MAX_RESOLUTION = 64  # quality() compares each half with every placement: (M, R * R / 2) masks


def object_size(resolution: int) -> int:
    r"""Width $s = \lfloor 5R/16 \rfloor$ of each object; raises ValueError for unusable R."""
    if resolution % 8 or not 16 <= resolution <= MAX_RESOLUTION:
        raise ValueError(
            f"the built-in data set needs a resolution that is a multiple of 8 from 16 to "
            f"{MAX_RESOLUTION}, got {resolution}: use e.g. 16, 24 or 32"
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


@functools.lru_cache(maxsize=8)
def placements(resolution: int) -> np.ndarray:
    """Every object a real left half can hold, as 0/1 float32 masks (K * rows * cols, R * R / 2),
    ordered by (shape, row, column)."""
    s, shapes = object_size(resolution), templates(resolution)
    n_rows, n_cols = _positions(resolution)
    masks = np.zeros((len(shapes), n_rows, n_cols, resolution, resolution // 2), dtype=bool)
    for r in range(n_rows):
        for c in range(n_cols):
            masks[:, r, c, 1 + r : 1 + r + s, 1 + c : 1 + c + s] = shapes
    return masks.reshape(-1, resolution * (resolution // 2)).astype(np.float32)


def _decode_half(x: np.ndarray) -> dict[str, np.ndarray]:
    """Decode the object in one (left, or mirrored right) half: x float (B, R, R/2, 3)."""
    B, R = x.shape[:2]
    masks = placements(R)  # (M, P)
    b = x.max(axis=-1).reshape(B, -1)  # (B, P) brightness
    # argmin_m ||b - m||^2 = argmax_m b . m, with m = 2 mask - 1 in {-1, 1}^P
    best = (2 * (b @ masks.T) - b.sum(axis=1, keepdims=True)).argmax(axis=1)  # (B,)
    shape = masks[best] > 0  # (B, P)
    lit = b > LIT
    iou = (lit & shape).sum(axis=1) / (lit | shape).sum(axis=1)
    colour = (x.reshape(B, -1, 3) * shape[..., None]).sum(axis=1) / shape.sum(axis=1)[:, None]
    on = colour > (colour.max(axis=1, keepdims=True) - 1) / 2  # (B, 3) lit channels
    matches = (on[:, None] == (PALETTE > 0)[None]).all(axis=2)  # (B, len(PALETTE))
    background = (b * ~shape).sum(axis=1) / (~shape).sum(axis=1) + 1
    ok = (iou >= MIN_IOU) & matches.any(axis=1) & (background < BACKGROUND_TOLERANCE)
    n_rows, n_cols = _positions(R)
    k, row, col = np.unravel_index(best, (len(CLASS_NAMES), n_rows, n_cols))
    return {"ok": ok, "shape": k, "colour": matches.argmax(axis=1), "row": row, "col": col}


def _expected_distinct(class_counts: np.ndarray, configurations: int) -> float:
    r"""Expected number of distinct configurations among $n_c$ uniform draws per class:
    $\sum_c K (1 - (1 - 1/K)^{n_c})$ with $K$ configurations per class."""
    K = configurations
    return float(np.sum(K * (1 - (1 - 1 / K) ** class_counts)))


def quality(images, labels) -> dict[str, float]:
    """Exact offline quality of samples: float (B, 3, R, R) in [-1, 1] (NumPy or torch) and labels
    (B,). Returns the fractions described in the module docstring."""
    x = np.asarray(images.detach().cpu() if hasattr(images, "detach") else images, np.float32)
    y = np.asarray(labels.detach().cpu() if hasattr(labels, "detach") else labels).astype(np.int64)
    if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != x.shape[3] or y.shape != x.shape[:1]:
        raise ValueError(
            f"quality() needs images (B, 3, R, R) and labels (B,), got {x.shape} and {y.shape}"
        )
    R = x.shape[2]
    object_size(R)  # checks R
    x = x.transpose(0, 2, 3, 1)  # (B, R, R, 3)
    a = _decode_half(x[:, :, : R // 2])
    b = _decode_half(x[:, :, R // 2 :][:, :, ::-1])  # mirrored: same coordinates as the left
    well_formed = a["ok"] & b["ok"]
    class_match = well_formed & (a["shape"] == y) & (b["shape"] == y)
    same = [a[key] == b[key] for key in ("shape", "colour", "row", "col")]
    agreement = well_formed & np.logical_and.reduce(same)
    correct = class_match & agreement
    configs = {(y[i], a["colour"][i], a["row"][i], a["col"][i]) for i in np.flatnonzero(correct)}
    # symmetry: Pearson correlation of the left half with the mirrored right half, per sample
    left = x[:, :, : R // 2].reshape(len(x), -1)
    right = x[:, :, R // 2 :][:, :, ::-1].reshape(len(x), -1)
    left, right = left - left.mean(1, keepdims=True), right - right.mean(1, keepdims=True)
    norms = np.sqrt((left**2).sum(1) * (right**2).sum(1))
    flat = (left.std(1) < 1e-3) | (right.std(1) < 1e-3)  # no pattern to correlate
    correlation = np.where(flat, 0.0, (left * right).sum(1) / np.maximum(norms, 1e-12))
    n_rows, n_cols = _positions(R)
    counts = np.bincount(y[(y >= 0) & (y < len(CLASS_NAMES))], minlength=len(CLASS_NAMES))
    expected = _expected_distinct(counts, len(PALETTE) * n_rows * n_cols)
    return {
        "well_formed": float(well_formed.mean()),
        "class_match": float(class_match.mean()),
        "agreement": float(agreement.mean()),
        "score": float(correct.mean()),
        "diversity": min(1.0, len(configs) / expected) if expected else 0.0,
        "symmetry": float(correlation.mean()),
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
