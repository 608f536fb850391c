r"""Minibatch standard deviation (Karras et al., *Progressive Growing of GANs*, ICLR 2018, sec. 3;
the `num_channels` generalisation of StyleGAN): feature maps that tell D how varied the images of
a group are.

    x (B, C, H, W) -> groups of g consecutive images -> std over each group, per (c, h, w)
      -> mean over h, w and over each of F slices of the channels: F numbers per group
      -> x with them appended as channels C + 1 .. C + F

A generator that repeats a few images, or never uses some colour, gives groups of fakes with too
little spread in some features, which D can learn to reject whatever the single images look like.
F = 1 is ProGAN's single number; F = C keeps one statistic per feature. SAGAN does not use it,
nor does any preset: docs/training.md measures it against the default run's mode collapse (it
restores the colours, not the diversity). Groups are
**consecutive** images, so D's one pass on `cat([real, fake])` never mixes real and fake in a
group when the batch is a multiple of g; a batch that is not uses the largest group size
dividing it (1 = no signal).
"""

import math

import torch
from torch import nn


class MinibatchStd(nn.Module):
    """Append `features` maps: the standard deviation over groups of `group_size` consecutive
    images, averaged over positions and over each of `features` equal slices of the channels."""

    def __init__(self, group_size: int, features: int = 1):
        super().__init__()
        if group_size < 2 or features < 1:
            raise ValueError(f"a minibatch-std group needs >= 2 images and >= 1 feature, got "
                             f"{group_size} and {features}")
        self.group_size, self.features = group_size, features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, H, W) -> (B, C + F, H, W)
        B, C, H, W = x.shape
        g, F = math.gcd(B, self.group_size), self.features
        groups = x.float().reshape(B // g, g, F, C // F, H, W)
        s = groups.var(dim=1, unbiased=False).add(1e-8).sqrt().mean(dim=(2, 3, 4))  # (B/g, F)
        s = s.to(x.dtype).repeat_interleave(g, dim=0).reshape(B, F, 1, 1).expand(B, F, H, W)
        return torch.cat([x, s], dim=1)
