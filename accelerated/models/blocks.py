r"""The residual blocks of SAGAN's generator (`GBlock`) and discriminator (`DBlock`).

Both follow the official code (SPEC section 4) and BigGAN-PyTorch's `GBlock` / `DBlock`:

    GBlock:  h = conv3x3(ReLU(CBN(up(conv3x3(ReLU(CBN(x, y))))), y)),   out = h + up(conv1x1(x))
    DBlock:  h = pool(conv3x3(ReLU(conv3x3(ReLU(x))))),                 out = h + conv1x1(pool(x))

(up = nearest-neighbour x2, pool = 2x2 average pooling.) The shortcut's 1x1 convolution exists
only when the block changes the size or the width (as the official D's `block`); otherwise the
shortcut is the identity, which is what the paper's "residual block instead of attention"
ablation uses.
"""

import torch
import torch.nn.functional as F
from torch import nn

from accelerated.layers import ConditionalBatchNorm2d, sn_conv2d


# --8<-- [start:g-block]
class GBlock(nn.Module):
    """Pre-activation up-block of G: CBN -> ReLU -> up x2 -> conv3x3 -> CBN -> ReLU -> conv3x3.

    `upsample=False` keeps the size (the residual block of the attention ablation).
    `num_classes == 0` makes the batch norms unconditional; `sn=False` drops spectral norm.
    """

    def __init__(self, in_ch: int, out_ch: int, num_classes: int, upsample: bool = True,
                 sn: bool = True):
        super().__init__()
        self.upsample = upsample
        self.bn1 = ConditionalBatchNorm2d(in_ch, num_classes)
        self.conv1 = sn_conv2d(in_ch, out_ch, 3, padding=1, sn=sn)
        self.bn2 = ConditionalBatchNorm2d(out_ch, num_classes)
        self.conv2 = sn_conv2d(out_ch, out_ch, 3, padding=1, sn=sn)
        learnable_shortcut = upsample or in_ch != out_ch
        self.shortcut = sn_conv2d(in_ch, out_ch, 1, sn=sn) if learnable_shortcut else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        # (B, in_ch, H, W) -> (B, out_ch, 2H, 2W)
        h = F.relu(self.bn1(x, y))
        if self.upsample:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
        h = self.conv1(h)
        h = self.conv2(F.relu(self.bn2(h, y)))
        if self.shortcut is not None:
            # conv1x1 then up equals the official up then conv1x1 (nearest upsampling copies
            # pixels, a 1x1 conv acts on each pixel alone), at a quarter of the cost.
            x = self.shortcut(x)
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return x + h
# --8<-- [end:g-block]


# --8<-- [start:d-block]
class DBlock(nn.Module):
    """Pre-activation down-block of D: ReLU -> conv3x3 -> ReLU -> conv3x3 -> avgpool.

    `preactivation=False` is the official "optimized" first block, which sees the image and so
    starts with the convolution (conv3x3 -> ReLU -> conv3x3 -> avgpool). Every convolution is
    spectrally normalised: SAGAN's D always is.
    """

    def __init__(self, in_ch: int, out_ch: int, downsample: bool = True,
                 preactivation: bool = True):
        super().__init__()
        self.downsample = downsample
        self.preactivation = preactivation
        self.conv1 = sn_conv2d(in_ch, out_ch, 3, padding=1)
        self.conv2 = sn_conv2d(out_ch, out_ch, 3, padding=1)
        learnable_shortcut = downsample or in_ch != out_ch
        self.shortcut = sn_conv2d(in_ch, out_ch, 1) if learnable_shortcut else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, in_ch, H, W) -> (B, out_ch, H/2, W/2)
        h = F.relu(x) if self.preactivation else x
        h = self.conv2(F.relu(self.conv1(h)))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
            # pool then conv1x1 equals conv1x1 then pool (both are linear and the conv acts on
            # each pixel alone), at a quarter of the cost; the official optimized block does this.
            x = F.avg_pool2d(x, 2)
        if self.shortcut is not None:
            x = self.shortcut(x)
        return x + h
# --8<-- [end:d-block]
