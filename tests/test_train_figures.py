"""Figures: the attention map of a query is drawn where its weight is."""

import numpy as np
import torch

from accelerated.figures import images as figures


def test_attention_panel_is_hot_where_the_query_attends():
    R, side, side_k = 16, 8, 4  # 8x8 queries, 2x2-pooled 4x4 keys
    images = -torch.ones(1, 3, R, R)  # a black image
    beta = torch.zeros(1, side * side, side_k * side_k)
    query, key = (2, 1), (3, 2)  # query row 2 col 1 attends only to key row 3 col 2
    beta[0, query[0] * side + query[1], key[0] * side_k + key[1]] = 1.0
    scale = 4
    fig = np.asarray(figures.attention_figure(images, beta, scale=scale,
                                              queries_per_image=[[query]]))
    size = R * scale
    panel = fig[figures.PAD : figures.PAD + size, 2 * figures.PAD + size : 2 * (figures.PAD + size)]
    red = panel[..., 0].astype(float)
    cell = size // side_k  # pixels per key cell
    hot = red[key[0] * cell : (key[0] + 1) * cell, key[1] * cell : (key[1] + 1) * cell]
    assert hot.min() > 150  # the attended cell glows
    mask = np.ones_like(red, bool)
    mask[key[0] * cell : (key[0] + 1) * cell, key[1] * cell : (key[1] + 1) * cell] = False
    # elsewhere dark, except the query's dot
    dot = np.zeros_like(mask)
    cy, cx = int((query[0] + 0.5) * size / side), int((query[1] + 0.5) * size / side)
    dot[cy - 4 : cy + 5, cx - 4 : cx + 5] = True
    assert red[mask & ~dot].max() < 40


def test_queries_sit_on_the_bright_objects():
    image = -torch.ones(3, 16, 16)
    image[1, 4:6, 2:4] = 1  # an object on the left
    image[2, 10:12, 12:14] = 1  # one on the right
    left, right, dark = figures.choose_queries(image, 8)
    assert left == (2, 1) and right == (5, 6)
    assert image[:, dark[0] * 2 : dark[0] * 2 + 2, dark[1] * 2 : dark[1] * 2 + 2].max() == -1


def test_grid_layout():
    images = torch.zeros(10, 3, 16, 16)
    grid = figures.grid(images, columns=4, scale=2)
    assert grid.size == (4 * (32 + figures.PAD) + figures.PAD, 3 * (32 + figures.PAD) + figures.PAD)


def test_grid_says_when_the_generator_produced_non_finite_values():
    """A diverged generator drew an all-black grid and nobody said why."""
    images = torch.zeros(3, 3, 8, 8)
    images[1, 0, 2, 5] = float("nan")
    images[2] = float("inf")
    said = []
    grid = figures.grid(images, columns=3, scale=1, warn=said.append)
    assert said == ["warning: the generator produced non-finite values: 2 of 3 images hold NaN or "
                    "infinite values; the sample grid draws them black (the generator has "
                    "diverged)"]
    pad, tile = figures.PAD, 8 + figures.PAD
    assert grid.getpixel((pad + tile + 5, pad + 2)) == (0, 128, 128)  # NaN red: black
    assert grid.getpixel((pad + 2 * tile, pad)) == (255, 255, 255)
    figures.grid(images[:1], columns=1, warn=said.append)
    assert len(said) == 1  # finite images: no warning
    nan_maps = torch.full((1, 16, 16), float("nan"))  # what a diverged attention layer gives
    figures.attention_figure(images[1:2].nan_to_num(0.0), nan_maps)  # draws, does not fail
