r"""Figures of a run, drawn with Pillow: sample grids and attention maps.

An **attention figure** is the paper's figure 1 for generated images: for a few query positions
$j$ of a self-attention layer, the weights $\beta_{j,i}$ over the attended positions $i$ (eq. 1),
drawn as a heat map over the sample, with the query marked by a dot of the same colour. A map
whose mass sits far from its query is long-range structure a convolution could not see.

A diverged generator gives NaN or infinite pixels, which no picture can show (NaN is drawn
black): `non_finite` says which images hold them, and `grid` warns.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw

QUERY_COLOURS = [(255, 64, 64), (64, 255, 64), (64, 160, 255), (255, 255, 64)]
PAD = 2


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, R, R) floats in [-1, 1] -> (B, R, R, 3) uint8; NaN becomes 0 (black)."""
    x = images.detach().float().cpu().nan_to_num(nan=-1.0).clamp(-1, 1)
    return ((x + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def non_finite(images: torch.Tensor) -> str | None:
    """None when every value of (B, ...) images is finite; else which images hold NaN or inf."""
    bad = ~torch.isfinite(images.detach()).flatten(1).all(dim=1)
    count = int(bad.sum())
    if count == 0:
        return None
    return f"{count} of {len(images)} images hold NaN or infinite values"


def upscale_for(resolution: int, target: int = 64) -> int:
    """Integer nearest-neighbour factor that makes small images readable (>= `target` px)."""
    return max(1, math.ceil(target / resolution))


def grid(images: torch.Tensor, columns: int, scale: int | None = None, warn=None) -> Image.Image:
    """Tile (B, 3, R, R) images in [-1, 1] row by row, `columns` a row, on a grey background;
    `warn(message)`, when given, says so when some are not finite (a diverged generator), since
    the picture cannot."""
    problem = non_finite(images)
    if problem and warn is not None:
        warn(f"warning: the generator produced non-finite values: {problem}; the sample grid "
             f"draws them black (the generator has diverged)")
    pixels = to_uint8(images)
    B, R = pixels.shape[0], pixels.shape[1]
    scale = scale or upscale_for(R)
    size = R * scale
    rows = math.ceil(B / columns)
    sheet = Image.new("RGB", (columns * (size + PAD) + PAD, rows * (size + PAD) + PAD), (96,) * 3)
    for i, img in enumerate(pixels):
        tile = Image.fromarray(img).resize((size, size), Image.NEAREST)
        sheet.paste(tile, (PAD + (i % columns) * (size + PAD), PAD + (i // columns) * (size + PAD)))
    return sheet


def choose_queries(image: torch.Tensor, side: int) -> list[tuple[int, int]]:
    """Query positions on a `side` x `side` feature grid for one (3, R, R) image: the brightest
    position in the left half, in the right half, and the darkest position (background)."""
    brightness = image.detach().float().cpu().amax(dim=0)[None, None]  # (1, 1, R, R)
    b = torch.nn.functional.adaptive_avg_pool2d(brightness, side)[0, 0]  # (side, side)
    left = (torch.arange(side) < max(1, side // 2)).expand(side, side)  # (side, side)

    def brightest(values: torch.Tensor, mask: torch.Tensor) -> tuple[int, int]:
        return divmod(int(values.masked_fill(~mask, -math.inf).argmax()), side)

    right = ~left if side > 1 else left
    picks = [brightest(b, left), brightest(b, right), brightest(-b, torch.ones_like(left))]
    return list(dict.fromkeys(picks))


def _heat(weights: np.ndarray) -> np.ndarray:
    """Map weights (H, W) >= 0 to RGB floats in [0, 1] with a black-red-yellow-white ramp."""
    h = weights / max(float(weights.max()), 1e-12)
    return np.stack([np.clip(3 * h, 0, 1), np.clip(3 * h - 1, 0, 1), np.clip(3 * h - 2, 0, 1)], -1)


def attention_figure(images: torch.Tensor, attention: torch.Tensor, scale: int | None = None,
                     queries_per_image: list[list[tuple[int, int]]] | None = None) -> Image.Image:
    r"""One row per image: the sample with its query dots, then one panel per query showing
    $\beta_{j,\cdot}$ over the sample.

    images (B, 3, R, R) in [-1, 1]; attention (B, N, N_k) from a layer with N = side^2 query
    positions and N_k = side_k^2 key positions (side_k = side / 2 with pooled keys), row-major.
    """
    B, N, N_k = attention.shape
    side, side_k = math.isqrt(N), math.isqrt(N_k)
    pixels = to_uint8(images).astype(np.float64) / 255  # (B, R, R, 3)
    R = pixels.shape[1]
    scale = scale or upscale_for(R)
    size = R * scale
    if queries_per_image is None:
        queries_per_image = [choose_queries(images[b], side) for b in range(B)]
    columns = 1 + max(len(q) for q in queries_per_image)
    sheet = Image.new("RGB", (columns * (size + PAD) + PAD, B * (size + PAD) + PAD), (96,) * 3)
    for b, queries in enumerate(queries_per_image):
        panels = [pixels[b]]
        for row, col in queries:
            beta = attention[b, row * side + col].float().cpu().nan_to_num(0.0)  # diverged: 0
            beta = beta.numpy().reshape(side_k, side_k)
            heat = np.kron(_heat(beta), np.ones((R // side_k, R // side_k, 1)))  # (R, R, 3)
            panels.append(np.clip(0.6 * pixels[b] + 0.7 * heat, 0, 1))  # sample under the map
        for k, panel in enumerate(panels):
            tile = Image.fromarray((panel * 255).round().astype(np.uint8)).resize(
                (size, size), Image.NEAREST)
            draw = ImageDraw.Draw(tile)
            marks = queries if k == 0 else [queries[k - 1]]
            for q, (row, col) in enumerate(marks):
                colour = QUERY_COLOURS[(q if k == 0 else k - 1) % len(QUERY_COLOURS)]
                cy, cx = (row + 0.5) * size / side, (col + 0.5) * size / side
                r = max(2.0, size / 40)
                draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour, outline=(0, 0, 0))
            sheet.paste(tile, (PAD + k * (size + PAD), PAD + b * (size + PAD)))
    return sheet
