"""SAGAN's generator and discriminator, built from a `ModelConfig` and the architecture tables.

`python -m accelerated.models` prints the parameter counts of every preset.
"""

from torch import nn

from accelerated.layers import SelfAttention
from accelerated.models.architectures import ARCHITECTURES, Architecture
from accelerated.models.config import ModelConfig
from accelerated.models.discriminator import Discriminator
from accelerated.models.generator import Generator
from accelerated.models.sampling import generate, sample_noise


def build_models(cfg: ModelConfig) -> tuple[Generator, Discriminator]:
    """`(G, D)` for `cfg`. The layer factories initialise them as the official code does:
    Xavier-uniform weights (before spectral norm is registered), zero biases, CBN gains 1 and
    biases 0, attention gamma 0."""
    return Generator(cfg), Discriminator(cfg)


def attention_layers(module: nn.Module) -> list[SelfAttention]:
    """The self-attention blocks inside `module`, in forward order (for attention-map figures:
    set `store_attention = True` on them, run a forward, read `last_attention`)."""
    return [m for m in module.modules() if isinstance(m, SelfAttention)]


def named_attention_layers(
    G: nn.Module, D: nn.Module, cfg: ModelConfig
) -> dict[str, SelfAttention]:
    """`{"G8": layer, "D8": layer, ...}`: each self-attention block by network and feature-map
    size (G's maps grow along its forward pass, D's shrink)."""
    named = {}
    for net, module, sizes in (("G", G, sorted(cfg.g_attention_sizes)),
                               ("D", D, sorted(cfg.d_attention_sizes, reverse=True))):
        layers = attention_layers(module)
        if layers:  # none when attention_block is "residual"
            named.update({f"{net}{size}": layer for size, layer in zip(sizes, layers, strict=True)})
    return named


__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "Discriminator",
    "Generator",
    "ModelConfig",
    "attention_layers",
    "build_models",
    "generate",
    "named_attention_layers",
    "sample_noise",
]
