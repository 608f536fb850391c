"""SAGAN's generator and discriminator, built from a `ModelConfig` and the architecture tables.

`python -m accelerated.models` prints the parameter counts of every preset.
"""

from torch import nn

from accelerated.layers import SelfAttention
from accelerated.models.architectures import ARCHITECTURES, Architecture
from accelerated.models.config import ModelConfig
from accelerated.models.discriminator import Discriminator
from accelerated.models.generator import Generator


def build_models(cfg: ModelConfig) -> tuple[Generator, Discriminator]:
    """`(G, D)` for `cfg`. The layer factories initialise them as the official code does:
    Xavier-uniform weights (before spectral norm is registered), zero biases, CBN gains 1 and
    biases 0, attention gamma 0."""
    return Generator(cfg), Discriminator(cfg)


def attention_layers(module: nn.Module) -> list[SelfAttention]:
    """The self-attention blocks inside `module`, in forward order (for attention-map figures:
    set `store_attention = True` on them, run a forward, read `last_attention`)."""
    return [m for m in module.modules() if isinstance(m, SelfAttention)]


__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "Discriminator",
    "Generator",
    "ModelConfig",
    "attention_layers",
    "build_models",
]
