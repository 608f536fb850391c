"""D's minibatch-std feature: what it measures, and that D's one pass on cat([real, fake]) keeps
real and fake in separate groups."""

import pytest
import torch

from accelerated.layers import MinibatchStd
from accelerated.models import Discriminator, ModelConfig


@pytest.mark.parametrize("features", [1, 2])
def test_each_feature_is_a_groups_mean_standard_deviation_over_its_channels(features):
    x = torch.randn(8, 4, 3, 3, dtype=torch.float64)
    out = MinibatchStd(4, features)(x)
    assert out.shape == (8, 4 + features, 3, 3) and torch.equal(out[:, :4], x)
    width = 4 // features
    for g in range(2):
        for f in range(features):
            group = x[4 * g : 4 * g + 4, f * width : (f + 1) * width]
            expected = group.std(dim=0, unbiased=False).mean().expand(4, 3, 3)
            torch.testing.assert_close(out[4 * g : 4 * g + 4, 4 + f], expected,
                                       atol=1e-7, rtol=1e-7)


def test_repeated_images_give_zero_and_real_never_mixes_with_fake():
    real = torch.randn(4, 3, 4, 4)
    fake = torch.randn(1, 3, 4, 4).expand(4, 3, 4, 4)  # a collapsed generator
    out = MinibatchStd(4)(torch.cat([real, fake]))
    assert out[4:, 3].max() < 1e-3 < out[:4, 3].min()


def test_a_batch_not_a_multiple_of_the_group_uses_a_divisor():
    out = MinibatchStd(4)(torch.randn(6, 2, 3, 3))  # groups of gcd(6, 4) = 2
    assert torch.equal(out[0, 2], out[1, 2]) and not torch.equal(out[1, 2], out[2, 2])


def test_the_discriminator_depends_on_the_other_images_only_with_the_feature():
    torch.manual_seed(0)
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 4, (8,))
    changed = x.clone()
    changed[1] = torch.randn(3, 16, 16)  # same group as image 0 when groups are 4
    for group, depends in ((0, False), (4, True)):
        cfg = ModelConfig(resolution=16, num_classes=4, g_ch=16, d_ch=16, d_minibatch_std=group)
        D = Discriminator(cfg).eval()
        with torch.no_grad():
            a, b = D(x, y), D(changed, y)
        assert torch.equal(a[4:], b[4:])  # another group: untouched
        assert (a[0] != b[0]).item() is depends


@pytest.mark.parametrize("bad", [{"d_minibatch_std": 1}, {"d_minibatch_std": -2},
                                 {"d_minibatch_std": 2.5}, {"d_minibatch_std": True},
                                 {"d_minibatch_std_features": 0},
                                 {"d_minibatch_std_features": 3}])  # 64 channels
def test_a_bad_setting_is_refused_with_its_name(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        ModelConfig(resolution=16, num_classes=4, g_ch=16, d_ch=16, **bad)
