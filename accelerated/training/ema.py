r"""An exponential moving average of the generator's weights (BigGAN-style schedule).

Not in the SAGAN paper; BigGAN-PyTorch's SAGAN script uses it and reproductions found it matters
a lot (SPEC section 3). After each generator step $t$:

$$\bar\theta \leftarrow \begin{cases} \theta & t < t_0 \\
\delta\,\bar\theta + (1 - \delta)\,\theta & t \ge t_0 \end{cases}$$

with decay $\delta$ (e.g. 0.9999) and start step $t_0$. BatchNorm running statistics are
averaged the same way (as BigGAN-PyTorch does), so they describe the averaged weights rather
than the live ones. The spectral-norm vectors $u, v$ are copied instead: an average of unit
vectors is not a unit vector, and an evaluation-mode SN layer uses $u, v$ as stored.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

SN_VECTORS = ("_u", "_v")  # buffer names of torch's spectral-norm parametrization


class EMA:
    """Holds `model`, a frozen copy of the generator in evaluation mode."""

    def __init__(self, generator: nn.Module, decay: float, start: int):
        self.decay, self.start = decay, start
        self.model = copy.deepcopy(generator).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, generator: nn.Module, step: int) -> None:
        """Average after generator step `step` (copy while `step < start`)."""
        ema_params = list(self.model.parameters())
        params = [p.detach() for p in generator.parameters()]
        if step < self.start:
            torch._foreach_copy_(ema_params, params)
        else:
            # theta_bar <- theta_bar + (1 - delta) (theta - theta_bar)
            torch._foreach_lerp_(ema_params, params, 1.0 - self.decay)
        for (name, mine), live in zip(self.model.named_buffers(), generator.buffers(),
                                      strict=True):
            if step >= self.start and mine.is_floating_point() and not name.endswith(SN_VECTORS):
                mine.lerp_(live, 1.0 - self.decay)  # BN running mean and variance
            else:
                mine.copy_(live)  # SN vectors, BN batch counters, and everything before t_0
