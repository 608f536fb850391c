r"""The probe's examples: real Mirror twins (label 1) and mismatched twins (label 0), whose right
half comes from another real image. A mismatched image whose halves happen to agree (same shape,
hue and row within the quality measure's tolerances, about 1 in 100) is dropped, so every label is
exact by the data set's own measure (`builtin.twins_agree`)."""

from __future__ import annotations

import numpy as np
import torch

from accelerated.data import builtin


def _floats(images: np.ndarray) -> np.ndarray:
    """uint8 (B, R, R, 3) -> float32 (B, 3, R, R) in [-1, 1], as the models see images."""
    return images.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1


def examples(n: int, resolution: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` real and `n` mismatched images, shuffled: float (2n, 3, R, R) and labels float (2n,)."""
    rng = np.random.default_rng(seed)
    real = _floats(builtin.generate(n, resolution, seed=int(rng.integers(2**31)))[0])
    half = resolution // 2
    mismatched = np.empty((0, 3, resolution, resolution), np.float32)
    while len(mismatched) < n:
        draw = n + n // 10  # a tenth spare: about 1 in 100 pairs agree and is dropped
        left, right = (_floats(builtin.generate(draw, resolution, seed=int(rng.integers(2**31)))[0])
                       for _ in range(2))
        left[..., half:] = right[..., half:]
        mismatched = np.concatenate([mismatched, left[~builtin.twins_agree(left)]])
    images = np.concatenate([real, mismatched[:n]])
    labels = np.concatenate([np.ones(n, np.float32), np.zeros(n, np.float32)])
    order = rng.permutation(2 * n)
    return torch.from_numpy(images[order]), torch.from_numpy(labels[order])
