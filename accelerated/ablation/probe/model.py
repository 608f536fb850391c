r"""The probe's classifier: the discriminator's first block, optionally one self-attention block,
then `blocks - 1` more D blocks at the same size, ReLU, sum pooling and a linear read-out, as
SAGAN's D ends (without the class projection: the probe asks real-or-mismatched only).

With `resolution` R, the first block (the official "optimized" block, conv3x3 -> ReLU -> conv3x3 ->
2x2 average pool) maps R x R to R/2 x R/2; each further block adds two 3x3 convolutions at stride 2
in image pixels, 8 px of receptive field. `receptive_field` measures it rather than trusting that
arithmetic: the image columns a unit of the last map depends on."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from accelerated.data import builtin
from accelerated.layers import SelfAttention, sn_linear
from accelerated.models.blocks import DBlock


class Probe(nn.Module):
    """DBlock(3 -> channels, down) [-> SelfAttention] -> (blocks - 1) x DBlock(same size) ->
    ReLU -> sum pool -> linear: one logit per image, "the twins agree"."""

    def __init__(self, channels: int, blocks: int, attention: bool):
        super().__init__()
        self.first = DBlock(3, channels, preactivation=False)
        self.attention = SelfAttention(channels) if attention else None
        self.rest = nn.Sequential(*(DBlock(channels, channels, downsample=False)
                                    for _ in range(blocks - 1)))
        self.out = sn_linear(channels, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        # (B, 3, R, R) -> (B, channels, R/2, R/2)
        h = self.first(x)
        if self.attention is not None:
            h = self.attention(h)
        return self.rest(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.relu(self.features(x)).sum(dim=(2, 3))).squeeze(1)


def receptive_field(blocks: int, channels: int, resolution: int) -> dict[str, int | bool]:
    """Of the convolutions alone (attention left out): `width`, the most image columns one unit
    of the last map depends on, and `sees_both`, whether some unit depends on pixels of both
    twins (the left twin fills the first `object_size` columns, its mirror the last)."""
    torch.manual_seed(0)
    net = Probe(channels, blocks, attention=False)
    x = torch.randn(1, 3, resolution, resolution, requires_grad=True)
    h = net.features(x)  # (1, C, S, S)
    s, side = builtin.object_size(resolution), h.shape[-1]
    width, both = 0, False
    for j in range(side):  # one unit per column of the middle row: the widest views
        (grad,) = torch.autograd.grad(h[0, :, side // 2, j].sum(), x, retain_graph=True)
        columns = torch.nonzero(grad.abs().sum(dim=(0, 1, 2)) > 0).flatten().tolist()
        width = max(width, columns[-1] - columns[0] + 1)
        both |= columns[0] < s and columns[-1] >= resolution - s
    return {"width": width, "sees_both": both}
