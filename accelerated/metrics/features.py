r"""Feature networks for the metrics: the TensorFlow Inception of the paper, and an offline one.

Each extractor is an `nn.Module` mapping images (B, 3, H, W) in $[-1, 1]$ to a dict with
`"features"` (B, d) float32 (for FID and KID) and, when the network is a classifier, `"probs"`
(B, K) (for the Inception Score).

- `InceptionFeatures`: the TensorFlow Inception-v3 (2015-12-05) graph that the SAGAN paper's FID
  and IS used, as ported to PyTorch by torch-fidelity (2048 pool features, 1008-way softmax of the
  bias-free logits, as the original IS code). Needs `pip install "sagan-course[eval]"` (which
  needs torchvision, i.e. a torch build with a matching torchvision) and its weights file.
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
import math
import pickle
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

INCEPTION_WEIGHTS_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
    "weights-inception-2015-12-05-6726825d.pth"
)


class InceptionWeightsError(RuntimeError):
    """The Inception weights could not be fetched (no internet): the message says what to do."""


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


def _torch_fidelity_inception():
    """torch-fidelity's Inception class, imported lazily, or one ImportError saying what to do."""
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except (ImportError, RuntimeError) as error:  # RuntimeError: a torchvision/torch mismatch
        raise ImportError(
            "the Inception metrics need torch-fidelity (and a working torchvision): "
            'pip install "sagan-course[eval]" with a torch build that has a matching torchvision '
            "(CPU-only torch 2.13 has none; use the offline metrics there: --metrics offline, or "
            "run.eval_metrics = 'offline' in training). "
            f"Import failed with: {error}"
        ) from error
    return FeatureExtractorInceptionV3


class InceptionFeatures(nn.Module):
    """The TensorFlow Inception-v3 of the FID/IS literature (torch-fidelity's port).

    `weights_path`: a local copy of torch-fidelity's weights file (for machines without internet;
    download `INCEPTION_WEIGHTS_URL` elsewhere). None: torch-fidelity fetches it once into the
    torch hub cache. Images are quantised to uint8 as if saved to PNG, then resized by the network
    to 299x299 as TensorFlow 1 did.
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
                f"could not fetch the Inception weights ({error}): on a machine with internet "
                f"download {INCEPTION_WEIGHTS_URL}, copy it here and pass its path "
                f"(weights_path=..., --inception-weights PATH, or run.inception_weights)"
            ) from error
        self.net.eval()
        self.dim = 2048
        self.name = "inception-v3-tf-2015-12-05"

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        check_images(images)
        # [-1, 1] -> {0, ..., 255}, as saving the images would
        pixels = ((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        features, logits = self.net(pixels)  # (B, 2048), (B, 1008)
        return {"features": features, "probs": F.softmax(logits.double(), dim=1)}


def feature_network(kind: str, weights_path=None, resolution: int = 32) -> nn.Module:
    """`"offline"`: `RandomConvFeatures(resolution=resolution)`; `"inception"`:
    `InceptionFeatures(weights_path)`."""
    if kind == "offline":
        return RandomConvFeatures(resolution=resolution)
    if kind == "inception":
        return InceptionFeatures(weights_path)
    raise ValueError(f"unknown feature network {kind!r}: use 'offline' or 'inception'")
