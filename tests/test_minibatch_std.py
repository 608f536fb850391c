"""D's minibatch-std feature: what it measures, and that D's one pass on cat([real, fake]) keeps
real and fake in separate groups."""

import pytest
import torch

from accelerated.layers import MinibatchStd
from accelerated.models import Discriminator, ModelConfig


def test_the_feature_is_each_groups_mean_standard_deviation():
    x = torch.randn(8, 3, 4, 4, dtype=torch.float64)
    out = MinibatchStd(4)(x)
    assert out.shape == (8, 4, 4, 4) and torch.equal(out[:, :3], x)
    for g in range(2):
        group = x[4 * g : 4 * g + 4]
        expected = group.std(dim=0, unbiased=False).mean()
        torch.testing.assert_close(out[4 * g : 4 * g + 4, 3], expected.expand(4, 4, 4),
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


@pytest.mark.parametrize("bad", [1, -2, 2.5, True])
def test_a_bad_group_size_is_refused_with_its_name(bad):
    with pytest.raises(ValueError, match="d_minibatch_std"):
        ModelConfig(resolution=16, num_classes=4, g_ch=16, d_ch=16, d_minibatch_std=bad)
