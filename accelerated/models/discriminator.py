r"""SAGAN's discriminator $D(x, y)$: ResNet with self-attention and a projection head.

    x (B, 3, R, R) -> optimized first block -> pre-activation down-blocks (DBlock; a
      self-attention block after the first block of each listed size; with `d_minibatch_std`,
      a minibatch-std channel before the last block) -> ReLU
      -> global sum pool h (B, C) -> SN-linear(h) + <SN-embedding(y), h>   (B,) logits

The widths and downsampling come from the architecture table of `cfg.resolution`. For the
128x128 model the last block keeps the 4x4 size (SPEC section 4). D is always spectrally
normalised.
"""

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from accelerated.layers import MinibatchStd, ProjectionHead, SelfAttention
from accelerated.models.blocks import DBlock
from accelerated.models.config import ModelConfig


class Discriminator(nn.Module):
    """`forward(x, y)`: images x (B, 3, R, R), labels y (B,) (None or ignored when
    `cfg.num_classes == 0`) -> raw logits (B,) for the hinge loss."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        arch = cfg.architecture
        widths = [3] + [m * cfg.d_ch for m in arch.d_channels]
        attend_after = cfg.d_attention_blocks
        blocks: list[nn.Module] = []
        last = len(arch.d_downsample) - 1
        for i, ((in_ch, out_ch), down) in enumerate(zip(pairwise(widths), arch.d_downsample,
                                                        strict=True)):
            if i == last and cfg.d_minibatch_std:
                blocks.append(MinibatchStd(cfg.d_minibatch_std, cfg.d_minibatch_std_features))
                in_ch += cfg.d_minibatch_std_features
            blocks.append(DBlock(in_ch, out_ch, downsample=down, preactivation=i > 0))
            if i in attend_after:
                if cfg.attention_block == "attention":
                    blocks.append(SelfAttention(out_ch, variant=cfg.attention_variant))
                else:
                    blocks.append(DBlock(out_ch, out_ch, downsample=False))
        self.blocks = nn.Sequential(*blocks)
        self.head = ProjectionHead(widths[-1], cfg.num_classes)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.cfg.conditional and y is None:
            raise ValueError(
                f"this discriminator is class-conditional ({self.cfg.num_classes} classes): "
                "pass labels y of shape (B,)"
            )
        h = self.blocks(x)  # (B, C, 4, 4) at 128x128
        h = F.relu(h).sum(dim=(2, 3))  # (B, C): global sum pooling
        return self.head(h, y if self.cfg.conditional else None)  # (B,)
