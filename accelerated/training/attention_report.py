r"""What a run's attention layers do, as numbers for `metrics.jsonl`: each layer's $\gamma$ (how
much of the non-local term $\gamma o$ the block lets in), and on the built-in data set its twin
attention (`accelerated.metrics.twins`): G's layers on generated images, D's on real ones.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from accelerated.layers import SelfAttention
from accelerated.metrics.twins import twin_attention

REPORT_IMAGES = 256
"""Images the twin attention is averaged over (G's samples, D's real images)."""


def gammas(layers: dict[str, SelfAttention]) -> dict[str, float]:
    """`{"gamma/G8": ..., ...}` for the named attention layers."""
    return {f"gamma/{name}": layer.gamma.item() for name, layer in layers.items()}


@contextlib.contextmanager
def recording(layers):
    """Within the block, each layer keeps its last attention map in `last_attention`."""
    for layer in layers:
        layer.store_attention = True
    try:
        yield
    finally:
        for layer in layers:
            layer.store_attention, layer.last_attention = False, None


@torch.no_grad()
def twin_report(layers: dict[str, SelfAttention], draw, z, y, D: nn.Module, real: torch.Tensor,
                y_real: torch.Tensor | None) -> dict[str, float]:
    """`{"twin/G8": mass, "twin_chance/G8": chance, ...}`: G's layers (those of the generator
    `draw` samples with) measured on `draw(z, y)`, D's on the real images `real` with labels
    `y_real` (D in evaluation mode)."""
    values = {}
    for net, images in (("G", None), ("D", real)):
        named = {k: v for k, v in layers.items() if k.startswith(net)}
        if not named:
            continue
        with recording(named.values()):
            if net == "G":
                images = draw(z, y)
            else:
                was_training = D.training
                D.eval()
                try:
                    D(images, y_real)
                finally:
                    D.train(was_training)
            maps = {name: layer.last_attention for name, layer in named.items()}
        for name, beta in maps.items():
            found = twin_attention(images, beta)
            values[f"twin/{name}"], values[f"twin_chance/{name}"] = found["mass"], found["chance"]
    return values
