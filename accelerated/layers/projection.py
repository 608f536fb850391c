r"""The projection discriminator's output head (Miyato & Koyama 2018), as SAGAN's D uses it.

For pooled features $h$ (B, F) and labels $y$:

$$D(x, y) = w^\top h + b + \langle \mathrm{embed}(y), h \rangle$$

with a spectrally normalised linear layer and a spectrally normalised class embedding. With
`num_classes == 0` only the linear term remains. The head runs in float32 even under bf16
autocast: its logits feed the losses, which are float32, and it is a few B x F products.
"""

import torch
from torch import nn

from accelerated.layers.spectral_norm import sn_embedding, sn_linear


class ProjectionHead(nn.Module):
    """(B, F) features and (B,) labels -> (B,) logits: `linear(h) + <embed(y), h>`."""

    def __init__(self, in_features: int, num_classes: int, sn: bool = True):
        super().__init__()
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0 (0: unconditional), got {num_classes}")
        self.num_classes = num_classes
        self.linear = sn_linear(in_features, 1, sn=sn)
        self.embed = sn_embedding(num_classes, in_features, sn=sn) if num_classes else None

    def forward(self, h: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        device = h.device.type
        if h.dtype in (torch.float16, torch.bfloat16):  # the head runs in float32 (or float64)
            h = h.float()
        if device not in ("cuda", "cpu"):  # e.g. meta tensors (FLOP counts): no autocast there
            return self._logits(h, y)
        with torch.autocast(device, enabled=False):
            return self._logits(h, y)

    def _logits(self, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        logits = self.linear(h)[:, 0]  # w^T h + b: (B,)
        if self.embed is None:
            return logits
        if y is None:
            raise ValueError(
                f"this head is conditioned on {self.num_classes} classes: pass labels y (B,)"
            )
        # <embed(y), h>: the projection term
        return logits + (self.embed(y) * h).sum(dim=1)  # (B,)
