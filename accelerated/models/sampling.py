"""G's inputs and outputs: noise and labels drawn one way everywhere (`sample_noise`), and images
drawn from a generator without changing it (`generate`: evaluation mode, no gradients)."""

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


def sample_noise(gen: torch.Generator, batch: int, z_dim: int, num_classes: int,
                 device: torch.device, classes: torch.Tensor | None = None,
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """G's inputs: z ~ N(0, I) of shape (B, z_dim), from `gen`, and labels (B,): `classes` when
    given, else uniform in [0, num_classes) from `gen` (None if num_classes is 0)."""
    z = torch.randn(batch, z_dim, generator=gen, device=device)
    if classes is not None:
        return z, classes.to(device)
    y = torch.randint(num_classes, (batch,), generator=gen, device=device) if num_classes else None
    return z, y
