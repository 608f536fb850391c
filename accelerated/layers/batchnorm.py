r"""Conditional batch normalisation: batch norm whose gain and bias depend on the class.

$$\mathrm{CBN}(x, y) = \gamma_y \odot \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta_y$$

with $\mu, \sigma^2$ the batch statistics per channel (running averages in eval mode) and
$\gamma_y, \beta_y$ rows of two per-class tables, initialised to 1 and 0 so that a fresh layer is
plain batch norm. As in the official code, the tables carry no spectral normalisation. With
`num_classes == 0` (an unconditional model) it is `nn.BatchNorm2d` with its own affine gain and
bias, and `y` is ignored.

The normalisation itself is an `nn.BatchNorm2d` submodule (`bn`), so
`nn.SyncBatchNorm.convert_sync_batchnorm` converts it for multi-GPU training.
"""

import torch
from torch import nn


# --8<-- [start:cbn]
class ConditionalBatchNorm2d(nn.Module):
    """Batch norm over (B, C, H, W) with per-class gain (init 1) and bias (init 0)."""

    def __init__(
        self, num_features: int, num_classes: int, eps: float = 1e-5, momentum: float = 0.1
    ):
        super().__init__()
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0 (0: unconditional), got {num_classes}")
        self.num_classes = num_classes
        self.bn = nn.BatchNorm2d(num_features, eps=eps, momentum=momentum, affine=num_classes == 0)
        if num_classes:
            self.gain = nn.Embedding(num_classes, num_features)
            self.bias = nn.Embedding(num_classes, num_features)
            nn.init.ones_(self.gain.weight)
            nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        x_hat = self.bn(x)  # (B, C, H, W)
        if not self.num_classes:
            return x_hat
        if y is None:
            raise ValueError(
                f"this layer is conditioned on {self.num_classes} classes: pass labels y (B,)"
            )
        # gamma_y, beta_y: (B, C, 1, 1) in x_hat's dtype (under bf16 autocast the float32 tables
        # would otherwise promote this output, and every element-wise op after it, to float32)
        gain = self.gain(y)[:, :, None, None].to(x_hat.dtype)
        bias = self.bias(y)[:, :, None, None].to(x_hat.dtype)
        return gain * x_hat + bias

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}"
# --8<-- [end:cbn]
