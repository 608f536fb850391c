r"""Parameter counts: of built modules, and of the official TensorFlow model by formula.

`parameter_count_formula` counts, layer by layer from the architecture table alone (no module
is built), the trainable variables the official code creates (`ops.snconv2d`: kernel + bias;
`ops.snlinear`: matrix + bias; `ops.sn_embedding`: table; `ConditionalBatchNorm`: per-class
gamma and beta; `batch_norm`: gamma and beta; `sn_non_local_block_sim`: four bias-free 1x1
convs and `sigma_ratio`). With $K$ classes, $k \times k$ convs from $a$ to $b$ channels and a
block from $a$ to $b$ channels:

$$\text{conv}_k(a, b) = k^2 a b + b, \qquad \text{CBN}(c) = 2Kc \;(2c \text{ if } K = 0)$$

$$\text{GBlock}(a, b) = \text{CBN}(a) + \text{conv}_3(a, b) + \text{CBN}(b) + \text{conv}_3(b, b)
  + \text{conv}_1(a, b)$$

$$\text{DBlock}(a, b) = \text{conv}_3(a, b) + \text{conv}_3(b, b)
  + [\text{down or } a \ne b]\, \text{conv}_1(a, b)$$

$$\text{Attn}(C) = C \tfrac{C}{8} + C \tfrac{C}{8} + C \tfrac{C}{2} + \tfrac{C}{2} C + 1
  = \tfrac{5}{4} C^2 + 1 \;\text{(official)}, \qquad
  4\, C \tfrac{C}{8} + 1 = \tfrac{1}{2} C^2 + 1 \;\text{(paper)}$$

$$|G| = (z + 1)\, 16 c_0 + \sum \text{GBlock} + \sum \text{Attn} + 2 c_{\text{last}}
  + \text{conv}_3(c_{\text{last}}, 3), \qquad
  |D| = \sum \text{DBlock} + \sum \text{Attn} + (c_{\text{last}} + 1) + K c_{\text{last}}$$

A residual block in place of attention counts as a GBlock / DBlock from $C$ to $C$ without
resampling (identity shortcut, no 1x1 conv). SN adds buffers, not parameters: PyTorch keeps
$u$ (rows) and $v$ (columns) per normalised weight, TensorFlow only $u$.
"""

from itertools import pairwise

from torch import nn

from accelerated.models.config import ModelConfig


def count_parameters(module: nn.Module) -> int:
    """Number of trainable scalars (SN's original weights count once)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def count_sn_buffers(module: nn.Module) -> int:
    """Number of scalars in spectral-norm buffers (PyTorch's `_u` and `_v` vectors)."""
    return sum(b.numel() for name, b in module.named_buffers()
               if name.rsplit(".", 1)[-1] in ("_u", "_v"))


def parameter_count_formula(cfg: ModelConfig) -> tuple[int, int]:
    """`(|G|, |D|)`: the official code's trainable variables for `cfg`, by the formulas above."""
    K, arch = cfg.num_classes, cfg.architecture

    def conv(k: int, a: int, b: int) -> int:
        return k * k * a * b + b

    def bn(c: int) -> int:
        return 2 * K * c if K else 2 * c

    def attn(c: int) -> int:
        c_v = c // 2 if cfg.attention_variant == "official" else c // 8
        return 2 * c * (c // 8) + 2 * c * c_v + 1

    def g_block(a: int, b: int, resample: bool) -> int:
        shortcut = conv(1, a, b) if resample or a != b else 0
        return bn(a) + conv(3, a, b) + bn(b) + conv(3, b, b) + shortcut

    def d_block(a: int, b: int, resample: bool) -> int:
        shortcut = conv(1, a, b) if resample or a != b else 0
        return conv(3, a, b) + conv(3, b, b) + shortcut

    def extra(block, c: int) -> int:
        return attn(c) if cfg.attention_block == "attention" else block(c, c, False)

    g_widths = [m * cfg.g_ch for m in arch.g_channels]
    g = (cfg.z_dim + 1) * 16 * g_widths[0]
    for (a, b), size in zip(pairwise(g_widths), arch.g_sizes(), strict=True):
        g += g_block(a, b, True) + (extra(g_block, b) if size in cfg.g_attention_sizes else 0)
    g += 2 * g_widths[-1] + conv(3, g_widths[-1], 3)

    d_widths = [3] + [m * cfg.d_ch for m in arch.d_channels]
    attend_after = cfg.d_attention_blocks
    d = 0
    for i, ((a, b), down) in enumerate(zip(pairwise(d_widths), arch.d_downsample, strict=True)):
        d += d_block(a, b, down) + (extra(d_block, b) if i in attend_after else 0)
    d += (d_widths[-1] + 1) + K * d_widths[-1]
    return g, d
