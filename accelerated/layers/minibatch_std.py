r"""Minibatch standard deviation (Karras et al., *Progressive Growing of GANs*, ICLR 2018, sec. 3):
one extra feature map that tells D how varied the images of a group are.

    x (B, C, H, W) -> groups of g consecutive images -> std over each group, per (c, h, w)
      -> mean over (c, h, w): one number s per group -> x with s appended as channel C + 1

A generator that repeats a few images gives groups of near-identical fakes, so a low s, which D
can learn to reject whatever the single images look like. SAGAN does not use it; the built-in
CPU preset does, against mode collapse (docs/training.md). Groups are **consecutive** images, so
D's one pass on `cat([real, fake])` never mixes real and fake in a group when the batch is a
multiple of g; a batch that is not uses the largest group size dividing it (1 = no signal).
"""

import math

import torch
from torch import nn


class MinibatchStd(nn.Module):
    """Append the mean standard deviation over groups of `group_size` consecutive images."""

    def __init__(self, group_size: int):
        super().__init__()
        if group_size < 2:
            raise ValueError(f"a minibatch-std group needs >= 2 images, got {group_size}")
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, H, W) -> (B, C + 1, H, W)
        B, C, H, W = x.shape
        g = math.gcd(B, self.group_size)
        groups = x.float().reshape(B // g, g, C, H, W)
        s = groups.var(dim=1, unbiased=False).add(1e-8).sqrt().mean(dim=(1, 2, 3))  # (B // g,)
        s = s.to(x.dtype).repeat_interleave(g).reshape(B, 1, 1, 1).expand(B, 1, H, W)
        return torch.cat([x, s], dim=1)
