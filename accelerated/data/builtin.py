r"""The built-in data set, *Mirror twins*: generated, deterministic, with an exact quality score.

Every image is an $R \times R$ black picture holding **two copies of one shape**, one in the left
half and one in the right half, placed as mirror images of each other about the vertical centre
line:

- the **class** decides the shape: `ring`, `plus`, `x` or `tee`;
- the **hue** is drawn uniformly from the colour wheel (full saturation, full brightness),
  *independently of the class*: a continuum, not a palette;
- the **row** (the object's top edge) is drawn uniformly from top to bottom.

The left twin touches the left edge and the right twin the right edge, with one empty cell
between each twin and the centre line. So the two objects must agree on hue and on row, and
nothing local tells a generator which hue or row the other half chose: their centres are $5R/8$
pixels apart (10 at $R = 16$), more than half the image, and a convolution whose receptive field
does not span both sees only one of them. This is the long-range structure self-attention is for.

Every factor is drawable by a generator that upsamples by nearest neighbour: a shape is a
$3 \times 3$ pattern of square cells $c = R/8$ pixels wide (2 px at $R = 16$), so strokes are
$c$ pixels wide and there are no one-pixel details; any two shapes differ in at least 4 of the 9
cells, and horizontally every cell edge falls on an even column, where the generator's last
upsampling puts its own. Hue and row vary continuously (rows in one-pixel steps), so a
generator's smooth map from $z$ can cover them without jumping between isolated modes; the
measure below reads them in bins.

## The quality measure

Because every real image is drawn from a known recipe, a generated image can be *decoded* by
finding the real configuration nearest to it. In each half (the right half mirrored), with
brightness $b_p = \max_c x_{p,c}$ per pixel:

1. **placement**: among every (shape, row) a real object can have, rendered as
   $m \in \{-1, 1\}^P$ over the $P$ pixels of the half, take the one nearest in squared distance,
   $\arg\min_m \lVert b - m \rVert^2 = \arg\max_m b \cdot m$;
2. **shape check**: the lit pixels, $b_p > -0.25$ (`LIT`: 3/8 of the way from black to full
   colour), must overlap that placement with intersection-over-union at least `MIN_IOU` (0.5),
   so stray blobs, missing strokes, noise or an empty half fail (a mild blur passes);
3. **colour**: the mean colour over the placed shape must be vivid, brightest channel and
   saturation both at least `MIN_VIVID` (0.5, on a 0 to 1 scale); its hue is read from it;
4. **background**: the mean brightness outside the shape must be within `BACKGROUND_TOLERANCE`
   (0.5) of $-1$.

`quality(images, labels)` returns fractions of the batch:

| key | a sample counts when |
|---|---|
| `well_formed` | both halves pass the shape, colour and background checks |
| `class_match` | well formed, and both shapes are the shape of the requested class |
| `agreement` | well formed, same shape, hues within 30 degrees, rows within $R/16$ px |
| `score` | `class_match` and `agreement` both hold (a fully correct sample) |
| `diversity` | see below |
| `symmetry` | (not a fraction) mean correlation of the left half with the mirrored right half |

`diversity` is the **coverage** of the factors: the number of distinct (class, hue bin, row bin)
among the correct samples, `HUE_BINS` (6) bins of 60 degrees and `ROW_BINS` (6) bins of rows
about one cell tall (144 cells in all), divided by the number expected from real data with the
same class counts (capped at 1): low for a generator that draws a few hues or places, however
good they are. The row bins are that fine because a generator can draw its objects at a few
rows only, one every 4 px on its coarsest grid, which three bins of a third of the image each
did not see.

The tolerances (`HUE_TOLERANCE`, `row_tolerance`) are those of a continuous factor read by eye:
a 30-degree hue step is the gap between red and orange, and one pixel at $R = 16$ is the
finest step a row can take.

`symmetry` has no thresholds: it is the Pearson correlation between the left half and the
mirrored right half, averaged over the batch (0 for a flat half). It is 1 for real data and about
0 when the halves are independent, so it shows a generator learning the long-range agreement
before its shapes are clean enough to count in `agreement`.

Real data scores 1.0 on the first four and about 1.0 on `diversity`; uniform noise, blank or grey
images score 0; halves taken from two different real images agree by chance in about 1.3% of
samples (same shape 1/4, hues within 30 degrees 1/6, rows within 1 px 31/121 at $R = 16$);
a generator repeating one image scores about $1/4$ on `class_match` and near 0 on `diversity`.
Resolutions: multiples of 8 from 16 to 64.
"""

from __future__ import annotations

import functools

import numpy as np

CLASS_NAMES = ("ring", "plus", "x", "tee")
# Each shape on a 3 x 3 grid of cells (rows top to bottom); any two differ in >= 4 cells.
SHAPES = {
    "ring": ("###", "#.#", "###"),
    "plus": (".#.", "###", ".#."),
    "x": ("#.#", ".#.", "#.#"),
    "tee": ("###", ".#.", ".#."),
}
VERSION = 2  # of the recipe: anything cached from the images (FID references) names it
DEFAULT_SIZE = 10_000
MIN_IOU = 0.5
LIT = -0.25  # a pixel is lit when its brightest channel is 3/8 of the way up from black
MIN_VIVID = 0.5  # least brightest channel and saturation of a decoded colour (0 to 1 scale)
BACKGROUND_TOLERANCE = 0.5
HUE_TOLERANCE = 30.0  # degrees: twins whose hues differ by more disagree
HUE_BINS = 6  # 60-degree bins of the colour wheel, centred on red, yellow, green, ...
ROW_BINS = 6  # bins of rows about one cell (R/8 px) tall
MAX_RESOLUTION = 64


def cell_size(resolution: int) -> int:
    r"""Width $c = R/8$ of a shape's cells (strokes); raises ValueError for unusable R."""
    if resolution % 8 or not 16 <= resolution <= MAX_RESOLUTION:
        raise ValueError(
            f"the built-in data set needs a resolution that is a multiple of 8 from 16 to "
            f"{MAX_RESOLUTION}, got {resolution}: use e.g. 16, 24 or 32"
        )
    return resolution // 8


def object_size(resolution: int) -> int:
    r"""Width $s = 3c = 3R/8$ of each object (6 px at $R = 16$)."""
    return 3 * cell_size(resolution)


def row_tolerance(resolution: int) -> int:
    """Largest row difference (px) of twins that agree: R/16, one pixel at R = 16."""
    return resolution // 16


def templates(resolution: int) -> np.ndarray:
    """The class shapes at this resolution: bool (num_classes, s, s), cells c x c pixels."""
    c = cell_size(resolution)
    cells = np.array([[[ch == "#" for ch in row] for row in SHAPES[k]] for k in CLASS_NAMES])
    return cells.repeat(c, axis=1).repeat(c, axis=2)


def num_rows(resolution: int) -> int:
    """Rows the objects' top edge can take: anywhere from the top to the bottom edge."""
    return resolution - object_size(resolution) + 1


def hue_to_rgb(hue: np.ndarray) -> np.ndarray:
    """Fully saturated, fully bright colours of hues in degrees: float (..., 3) in [0, 1]."""
    k = (np.asarray(hue, np.float64)[..., None] / 60 + np.array([5, 3, 1])) % 6
    return 1 - np.clip(np.minimum(k, 4 - k), 0, 1)


def rgb_to_hue(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hue in degrees, saturation, brightest channel) of colours float (..., 3) in [0, 1]."""
    r, g, b = np.moveaxis(rgb, -1, 0)
    top, spread = rgb.max(axis=-1), np.ptp(rgb, axis=-1)
    d = np.where(spread > 0, spread, 1)
    sector = np.select([top == r, top == g], [(g - b) / d, (b - r) / d + 2], (r - g) / d + 4)
    return (60 * sector) % 360, spread / np.maximum(top, 1e-12), top


def generate(n: int, resolution: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Draw `n` images: uint8 (n, R, R, 3) and int64 labels (n,), balanced classes, from `seed`."""
    s, shapes = object_size(resolution), templates(resolution)  # (K, s, s)
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(CLASS_NAMES)).astype(np.int64)
    colours = np.round(255 * hue_to_rgb(rng.uniform(0, 360, size=n))).astype(np.uint8)
    rows = rng.integers(num_rows(resolution), size=n)
    images = np.zeros((n, resolution, resolution, 3), dtype=np.uint8)
    half = resolution // 2
    for i in range(n):
        box = images[i, rows[i] : rows[i] + s, :s]  # the left twin, at the outer edge
        box[shapes[labels[i]]] = colours[i]
    images[:, :, half:] = images[:, :, :half][:, :, ::-1]  # the mirror twin
    return images, labels


@functools.lru_cache(maxsize=8)
def placements(resolution: int) -> np.ndarray:
    """Every object a real left half can hold, as 0/1 float32 masks (K * rows, R * R / 2), ordered
    by (shape, row)."""
    s, shapes, n_rows = object_size(resolution), templates(resolution), num_rows(resolution)
    masks = np.zeros((len(shapes), n_rows, resolution, resolution // 2), dtype=bool)
    for r in range(n_rows):
        masks[:, r, r : r + s, :s] = shapes
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
    hue, saturation, brightest = rgb_to_hue(np.clip((colour + 1) / 2, 0, 1))
    vivid = (saturation >= MIN_VIVID) & (brightest >= MIN_VIVID)
    background = (b * ~shape).sum(axis=1) / (~shape).sum(axis=1) + 1
    ok = (iou >= MIN_IOU) & vivid & (background < BACKGROUND_TOLERANCE)
    k, row = np.unravel_index(best, (len(CLASS_NAMES), num_rows(R)))
    return {"ok": ok, "shape": k, "hue": hue, "row": row}


def hue_bin(hue: np.ndarray) -> np.ndarray:
    """Bin of each hue (degrees): `HUE_BINS` bins, the first centred on red (0 degrees)."""
    width = 360 / HUE_BINS
    return ((np.asarray(hue) + width / 2) // width).astype(np.int64) % HUE_BINS


def row_bin(row: np.ndarray, resolution: int) -> np.ndarray:
    """Bin of each row index (0 .. num_rows - 1): `ROW_BINS` bins, as equal as the count of
    rows allows."""
    return np.asarray(row) * ROW_BINS // num_rows(resolution)


def _expected_distinct(class_counts: np.ndarray, resolution: int) -> float:
    r"""Expected number of distinct (hue bin, row bin) cells among $n_c$ real images of each
    class $c$: $\sum_c \sum_k (1 - (1 - p_k)^{n_c})$, $p_k$ the chance of cell $k$ (hues are
    uniform over equal bins; the last row bin can hold fewer rows)."""
    rows = np.bincount(row_bin(np.arange(num_rows(resolution)), resolution), minlength=ROW_BINS)
    p = np.outer(np.full(HUE_BINS, 1 / HUE_BINS), rows / rows.sum()).ravel()  # (cells,)
    return float(np.sum(1 - (1 - p[None]) ** np.asarray(class_counts)[:, None]))


def _halves(x: np.ndarray) -> tuple[dict, dict, np.ndarray]:
    """The decoded left half, the decoded mirrored right half, and whether the twins agree (both
    well formed, same shape, hues and rows within the tolerances): x float (B, R, R, 3)."""
    R = x.shape[1]
    cell_size(R)  # checks R
    a = _decode_half(x[:, :, : R // 2])
    b = _decode_half(x[:, :, R // 2 :][:, :, ::-1])  # mirrored: same coordinates as the left
    hue_gap = np.abs((a["hue"] - b["hue"] + 180) % 360 - 180)  # circular distance, degrees
    agreement = (
        a["ok"] & b["ok"]
        & (a["shape"] == b["shape"])
        & (hue_gap <= HUE_TOLERANCE)
        & (np.abs(a["row"] - b["row"]) <= row_tolerance(R))
    )
    return a, b, agreement


def twins_agree(images: np.ndarray) -> np.ndarray:
    """Whether each image's twins agree, as the quality measure's `agreement` counts it: images
    float (B, 3, R, R) in [-1, 1] -> bool (B,)."""
    return _halves(np.asarray(images, np.float32).transpose(0, 2, 3, 1))[2]


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
    x = x.transpose(0, 2, 3, 1)  # (B, R, R, 3)
    a, b, agreement = _halves(x)
    well_formed = a["ok"] & b["ok"]
    class_match = well_formed & (a["shape"] == y) & (b["shape"] == y)
    correct = class_match & agreement
    cells = zip(y, hue_bin(a["hue"]), row_bin(a["row"], R), strict=True)
    configs = {cell for cell, ok in zip(cells, correct, strict=True) if ok}
    # symmetry: Pearson correlation of the left half with the mirrored right half, per sample
    left = x[:, :, : R // 2].reshape(len(x), -1)
    right = x[:, :, R // 2 :][:, :, ::-1].reshape(len(x), -1)
    left, right = left - left.mean(1, keepdims=True), right - right.mean(1, keepdims=True)
    norms = np.sqrt((left**2).sum(1) * (right**2).sum(1))
    flat = (left.std(1) < 1e-3) | (right.std(1) < 1e-3)  # no pattern to correlate
    correlation = np.where(flat, 0.0, (left * right).sum(1) / np.maximum(norms, 1e-12))
    counts = np.bincount(y[(y >= 0) & (y < len(CLASS_NAMES))], minlength=len(CLASS_NAMES))
    expected = _expected_distinct(counts, R)
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
