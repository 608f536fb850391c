"""Drawing images from a generator without changing it (evaluation mode, no gradients)."""

from __future__ import annotations

import contextlib

import torch
from torch import nn


@torch.no_grad()
def generate(G: nn.Module, z: torch.Tensor, y: torch.Tensor | None, batch: int = 256,
             autocast=contextlib.nullcontext) -> torch.Tensor:
    """G's images for noise z (n, z_dim) and labels y (n,) or None, in chunks of `batch`, in
    evaluation mode (BN running statistics, no spectral-norm update); float32 (n, 3, R, R)."""
    was_training = G.training
    G.eval()
    try:
        with autocast():
            out = [G(z[i : i + batch], None if y is None else y[i : i + batch]).float()
                   for i in range(0, z.shape[0], batch)]
    finally:
        G.train(was_training)
    return torch.cat(out)
