r"""What a self-attention layer learned on Mirror twins: how much of a query's attention lands on
the *other* twin, against chance.

For one image of the built-in data set (`accelerated.data.builtin`) and one attention map
$\beta$ (B, N, N_k) of a layer (eq. 1: row $j$ holds query $j$'s weights over the key positions):

- a query or key **cell** is on the left (right) twin when it covers a lit pixel of the left
  (right) half, lit as in the quality measure (brightest channel above `builtin.LIT`);
- for every query on one twin, its **twin mass** is $\sum_{i \in \text{other twin}} \beta_{j,i}$,
  the weight it puts on the keys of the other twin;
- its **chance** level is the share of key cells on the other twin, $|\text{other}| / N_k$: the
  twin mass of a layer that attends uniformly.

`twin_attention` averages both over the queries on a twin of each image, then over the images
that have lit pixels in both halves. A layer that relates the twins, as the agreement of colour
and position needs, has a twin mass well above chance; a layer that attends locally (or to
itself) has one below. Cells never straddle the centre line when the cell size divides $R/2$
(true of every power-of-two map of a power-of-two image).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from accelerated.data.builtin import LIT


def twin_cells(images: torch.Tensor, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cells of a `side` x `side` grid covering lit pixels of the left and of the right half:
    images (B, 3, R, R) in [-1, 1] -> two bool (B, side * side), row-major like attention maps."""
    lit = (images.detach().float().cpu().amax(dim=1) > LIT).float()  # (B, R, R)
    half = images.shape[-1] // 2
    left, right = lit.clone(), lit.clone()
    left[..., half:], right[..., :half] = 0, 0
    cells = [F.adaptive_max_pool2d(m[:, None], side).flatten(1) > 0 for m in (left, right)]
    return cells[0], cells[1]


def twin_attention(images: torch.Tensor, attention: torch.Tensor) -> dict[str, float]:
    """`{"mass", "chance"}`: mean attention on the other twin of queries on a twin, and its
    chance level (see the module docstring). images (B, 3, R, R), attention (B, N, N_k); NaN when
    no image has lit pixels in both halves."""
    _, N, N_k = attention.shape
    q_left, q_right = twin_cells(images, math.isqrt(N))  # (B, N)
    k_left, k_right = twin_cells(images, math.isqrt(N_k))  # (B, N_k)
    beta = attention.detach().float().cpu()
    # weight each query puts on the keys of the left and of the right twin: (B, N)
    on_left = torch.einsum("bqk,bk->bq", beta, k_left.float())
    on_right = torch.einsum("bqk,bk->bq", beta, k_right.float())
    mass = (q_left * on_right + q_right * on_left).sum(1)  # (B,)
    chance = (q_left * k_right.sum(1, keepdim=True) + q_right * k_left.sum(1, keepdim=True))
    queries = (q_left | q_right).sum(1)  # (B,)
    valid = q_left.any(1) & q_right.any(1)
    if not valid.any():
        return {"mass": math.nan, "chance": math.nan}
    per_image_mass = mass[valid] / queries[valid]
    per_image_chance = chance.sum(1)[valid] / (queries[valid] * N_k)
    return {"mass": per_image_mass.mean().item(), "chance": per_image_chance.mean().item()}
