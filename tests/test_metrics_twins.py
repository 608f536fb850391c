"""Twin attention (`accelerated.metrics.twins`): attention of queries on one twin to the other,
against chance, on real Mirror-twins images with attention maps built by hand."""

import math

import pytest
import torch

from accelerated.data import builtin
from accelerated.data.arrays import to_model_range
from accelerated.metrics.twins import twin_attention, twin_cells
from accelerated.models import ModelConfig, build_models, named_attention_layers


def real_images(n=6, resolution=16):
    images, _ = builtin.generate(n, resolution, seed=3)
    return torch.from_numpy(to_model_range(images))


def test_cells_cover_each_twin_in_its_own_half():
    x = real_images()
    left, right = twin_cells(x, 8)
    cols = torch.arange(64) % 8
    assert left.any(1).all() and right.any(1).all()
    assert not (left & (cols >= 4)).any() and not (right & (cols < 4)).any()
    # the mirror twin: the right cells are the left ones mirrored
    mirrored = left.view(-1, 8, 8).flip(-1).flatten(1)
    assert torch.equal(mirrored, right)


@pytest.mark.parametrize("side, side_k", [(8, 4), (8, 8), (16, 8)])
def test_uniform_attention_sits_exactly_at_chance(side, side_k):
    x = real_images()
    beta = torch.full((len(x), side * side, side_k * side_k), 1 / side_k**2)
    found = twin_attention(x, beta)
    assert found["mass"] == pytest.approx(found["chance"], abs=1e-6)
    assert 0 < found["chance"] < 0.5


def test_attention_on_the_other_twin_scores_one_and_on_itself_zero():
    x = real_images()
    k_left, k_right = twin_cells(x, 4)
    q_left, _ = twin_cells(x, 8)
    # queries on the left attend uniformly to the right twin's key cells, and vice versa
    to_other = torch.where(q_left[:, :, None], k_right[:, None, :].float(),
                           k_left[:, None, :].float())
    to_other = to_other / to_other.sum(-1, keepdim=True)
    assert twin_attention(x, to_other)["mass"] == pytest.approx(1.0)
    to_self = torch.where(q_left[:, :, None], k_left[:, None, :].float(),
                          k_right[:, None, :].float())
    to_self = to_self / to_self.sum(-1, keepdim=True)
    assert twin_attention(x, to_self)["mass"] == pytest.approx(0.0)


def test_images_without_two_twins_are_left_out():
    x = real_images()
    beta = torch.full((len(x), 64, 16), 1 / 16)
    one_twin = x.clone()
    one_twin[..., 8:] = -1  # right half black
    assert math.isnan(twin_attention(one_twin, beta)["mass"])
    both = torch.cat([x[:2], one_twin[2:]])
    assert twin_attention(both, beta[:6])["chance"] == pytest.approx(
        twin_attention(x[:2], beta[:2])["chance"])


def test_attention_layers_are_named_by_network_and_size():
    cfg = ModelConfig(resolution=32, num_classes=4, g_ch=8, d_ch=8, g_attention=(16, 32),
                      d_attention=(16,))
    G, D = build_models(cfg)
    named = named_attention_layers(G, D, cfg)
    assert list(named) == ["G16", "G32", "D16"]
    for layer in named.values():
        layer.store_attention = True
    with torch.no_grad():
        D(G(torch.randn(2, cfg.z_dim), torch.tensor([0, 1])), torch.tensor([0, 1]))
    sizes = {name: layer.last_attention.shape[1] for name, layer in named.items()}
    assert sizes == {"G16": 16 * 16, "G32": 32 * 32, "D16": 16 * 16}
    residual = ModelConfig(resolution=16, num_classes=4, g_ch=4, d_ch=4,
                           attention_block="residual")
    assert named_attention_layers(*build_models(residual), residual) == {}
