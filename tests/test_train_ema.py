"""The EMA of the generator: copy before the start step, then average weights and BN statistics."""

import torch
from torch import nn

from accelerated.layers import sn_conv2d
from accelerated.training.ema import EMA


def tiny_generator():
    torch.manual_seed(0)
    return nn.Sequential(sn_conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)).train()


def test_copies_before_start_then_averages():
    G = tiny_generator()
    ema = EMA(G, decay=0.9, start=2)
    conv_w = "0.parametrizations.weight.original"
    with torch.no_grad():
        G.state_dict()[conv_w].add_(1.0)
    G(torch.randn(2, 3, 4, 4))  # moves BN statistics and the SN vectors
    ema.update(G, step=1)  # before the start: a copy
    for key, value in G.state_dict().items():
        assert torch.equal(ema.model.state_dict()[key], value), key
    before = {k: v.clone() for k, v in ema.model.state_dict().items()}
    with torch.no_grad():
        G.state_dict()[conv_w].add_(1.0)
    G(torch.randn(2, 3, 4, 4))
    ema.update(G, step=2)  # from the start on: theta_bar + 0.1 (theta - theta_bar)
    live, mine = G.state_dict(), ema.model.state_dict()
    for key in (conv_w, "0.bias", "1.weight", "1.running_mean", "1.running_var"):
        expected = before[key] + 0.1 * (live[key] - before[key])
        assert torch.allclose(mine[key], expected, atol=1e-6), key
    assert not torch.allclose(mine[conv_w], live[conv_w])
    for key in ("0.parametrizations.weight.0._u", "0.parametrizations.weight.0._v",
                "1.num_batches_tracked"):
        assert torch.equal(mine[key], live[key]), key  # copied, not averaged


def test_the_average_is_frozen_and_in_eval_mode():
    ema = EMA(tiny_generator(), decay=0.9, start=0)
    assert not ema.model.training
    assert not any(p.requires_grad for p in ema.model.parameters())
