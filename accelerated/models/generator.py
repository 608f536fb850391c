r"""SAGAN's generator $G(z, y)$: class-conditional ResNet with self-attention (SPEC section 4).

    z (B, z_dim) -> SN-linear -> (B, g_channels[0] * g_ch, 4, 4)
      -> up-blocks (GBlock; a self-attention block after those whose output size is listed)
      -> BN -> ReLU -> SN-conv3x3 -> 3 channels -> tanh

The widths come from the architecture table of `cfg.resolution` (`architectures.py`).
"""

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from accelerated.layers import SelfAttention, sn_conv2d, sn_linear
from accelerated.models.blocks import GBlock
from accelerated.models.config import ModelConfig


class Generator(nn.Module):
    """`forward(z, y)`: z (B, z_dim) ~ N(0, I), y (B,) int64 labels (None or ignored when
    `cfg.num_classes == 0`) -> images (B, 3, R, R) in [-1, 1]."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        sn = cfg.sn_generator
        widths = [m * cfg.g_ch for m in cfg.architecture.g_channels]
        self.linear = sn_linear(cfg.z_dim, widths[0] * 4 * 4, sn=sn)
        blocks: list[nn.Module] = []
        for (in_ch, out_ch), size in zip(pairwise(widths), cfg.architecture.g_sizes(),
                                         strict=True):
            blocks.append(GBlock(in_ch, out_ch, cfg.num_classes, sn=sn))
            if size in cfg.g_attention_sizes:
                if cfg.attention_block == "attention":
                    blocks.append(SelfAttention(out_ch, variant=cfg.attention_variant, sn=sn))
                else:
                    blocks.append(GBlock(out_ch, out_ch, cfg.num_classes, upsample=False, sn=sn))
        self.blocks = nn.ModuleList(blocks)
        self.bn = nn.BatchNorm2d(widths[-1])
        self.conv_out = sn_conv2d(widths[-1], 3, 3, padding=1, sn=sn)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.cfg.conditional and y is None:
            raise ValueError(
                f"this generator is class-conditional ({self.cfg.num_classes} classes): "
                "pass labels y of shape (B,)"
            )
        y = y if self.cfg.conditional else None
        h = self.linear(z)  # (B, C0 * 16)
        h = h.reshape(z.shape[0], -1, 4, 4)  # (B, C0, 4, 4)
        for block in self.blocks:
            h = block(h, y) if isinstance(block, GBlock) else block(h)  # (B, C, S, S)
        h = self.conv_out(F.relu(self.bn(h)))  # (B, 3, R, R)
        return torch.tanh(h)
