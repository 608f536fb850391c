r"""One probe classifier, one seed: train on real and mismatched twins, measure on held-out ones.

Adam with SAGAN's D settings but for the first moment (the probe is a supervised classifier:
beta1 = 0.9, the usual value), the logistic loss, a fixed training set drawn once per seed and a
held-out set drawn from another seed. After training: held-out accuracy, the attention block's
$\gamma$ and, on the held-out *real* images, its twin attention (`accelerated.metrics.twins`):
how much of a query's attention on one twin lands on the other, against chance."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from accelerated.ablation.probe.data import examples
from accelerated.ablation.probe.model import Probe
from accelerated.metrics.twins import twin_attention


@dataclass(frozen=True)
class Settings:
    resolution: int = 16
    channels: int = 16
    steps: int = 1000
    batch: int = 64
    lr: float = 1e-3
    train: int = 3000
    """real images in the training set (and as many mismatched)"""
    test: int = 1000
    """real held-out images (and as many mismatched)"""


def batches(n: int, batch: int, steps: int) -> Iterator[torch.Tensor]:
    """`steps` batches of indices into n examples: passes over a fresh permutation each, the
    last partial batch of a pass left out (torch's global generator)."""
    order, cursor = torch.randperm(n), 0
    for _ in range(steps):
        if cursor + batch > n:
            order, cursor = torch.randperm(n), 0
        yield order[cursor:cursor + batch]
        cursor += batch


def accuracy(net: Probe, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float(((net(x) > 0).float() == y).float().mean())


def run(blocks: int, attention: bool, seed: int, settings: Settings) -> tuple[dict, dict]:
    """Train one classifier: (its held-out accuracy, gamma, twin attention and size; its
    trained weights)."""
    torch.manual_seed(seed)
    x, y = examples(settings.train, settings.resolution, seed=2 * seed)
    x_test, y_test = examples(settings.test, settings.resolution, seed=2 * seed + 1)
    net = Probe(settings.channels, blocks, attention)
    opt = torch.optim.Adam(net.parameters(), lr=settings.lr, betas=(0.9, 0.999))
    for idx in batches(len(x), settings.batch, settings.steps):
        loss = F.binary_cross_entropy_with_logits(net(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    net.eval()
    result = {"blocks": blocks, "attention": attention, "seed": seed,
              "params": sum(p.numel() for p in net.parameters()),
              "train_accuracy": accuracy(net, x, y),
              "test_accuracy": accuracy(net, x_test, y_test)}
    if attention:
        real = x_test[y_test == 1][:256]
        net.attention.store_attention = True
        with torch.no_grad():
            net.features(real)
        twins = twin_attention(real, net.attention.last_attention)
        result |= {"gamma": net.attention.gamma.item(), "twin_mass": twins["mass"],
                   "twin_chance": twins["chance"]}
    return result, net.state_dict()
