r"""The self-attention block as a layer: four spectrally normalised 1x1 convolutions and $\gamma$.

$y = \gamma\, o + x$ with $o$ from eqs. (1)-(2) (see `accelerated.ops.attention`). As in the
official code, the 1x1 convolutions have no biases and all four carry spectral normalisation, and
$\gamma$ starts at 0, so a fresh block is the identity and the network learns how much non-local
evidence to let in.

The modules are named after the paper's maps: `f` (keys), `g` (queries), `h` (values), `v`
(output). `forward` reads their spectrally normalised weights and calls
`accelerated.ops.self_attention`, so layer and op share one code path.
"""

import torch
from torch import nn

from accelerated.layers.spectral_norm import sn_conv2d
from accelerated.ops import attention_dims, self_attention


class SelfAttention(nn.Module):
    """SAGAN's self-attention on `channels` channels; `variant` "official" (C/2 values, 2x2
    max-pooled keys and values) or "paper" (C/8 values, every position attended).

    Set `store_attention = True` to keep the last forward's attention map, detached, in
    `last_attention` (B, N, N_k): row j holds the weights of query position j over the keys.
    """

    def __init__(self, channels: int, variant: str = "official", sn: bool = True):
        super().__init__()
        c_qk, c_v, self.pool = attention_dims(channels, variant)
        self.variant = variant
        self.f = sn_conv2d(channels, c_qk, 1, bias=False, sn=sn)  # keys
        self.g = sn_conv2d(channels, c_qk, 1, bias=False, sn=sn)  # queries
        self.h = sn_conv2d(channels, c_v, 1, bias=False, sn=sn)  # values
        self.v = sn_conv2d(c_v, channels, 1, bias=False, sn=sn)  # output
        self.gamma = nn.Parameter(torch.zeros(()))
        self.store_attention = False
        self.last_attention: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # each 1x1 kernel (out, in, 1, 1) as the (out, in) matrix the op expects
        W_f, W_g, W_h, W_v = (m.weight.flatten(1) for m in (self.f, self.g, self.h, self.v))
        if not self.store_attention:
            return self_attention(x, W_f, W_g, W_h, W_v, self.gamma, pool=self.pool)
        y, beta = self_attention(
            x, W_f, W_g, W_h, W_v, self.gamma, pool=self.pool, return_attention=True
        )
        self.last_attention = beta.detach()
        return y

    def extra_repr(self) -> str:
        return f"variant={self.variant!r}, pool={self.pool}"
