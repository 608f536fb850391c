r"""Generated images against a data set: reference features computed once and cached, then FID,
KID and IS. Shared by `python -m accelerated.evaluate` and a training run's periodic evaluation.

- `Features`: streams a feature network's outputs: FID statistics of all rows, the first feature
  rows (for KID) and, for a classifier, all class probabilities (for IS);
- `for_dataset`: a data set's mean, covariance and KID rows, read from the cache or computed once
  and written there. The cache file is named after everything the numbers depend on (data set,
  resolution, feature network, number of images), so a training run's evaluations and a later
  `accelerated.evaluate` of its checkpoint read the same file;
- `generated_features`: features of a generator's images, a batch at a time;
- `compare`: FID, KID (and IS) of generated features against the reference.

Everything here runs on one process (a training run evaluates on rank 0 alone).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import torch

from accelerated.data import builtin
from accelerated.data.prepare import cache_key
from accelerated.files import save_atomic
from accelerated.metrics import scores
from accelerated.metrics.statistics import FeatureStatistics

CACHE_FORMAT = 1
KID_ROWS = 10_000  # reference feature rows kept for KID
KID_SUBSET_SIZE = 1000  # Bińkowski et al.'s default
IS_SPLITS = 10
KID_SUBSETS = 100  # Bińkowski et al.'s default (`accelerated.evaluate`)
KID_SUBSETS_TRAINING = 10  # a training run's evaluations: seconds on a CPU, a noisier KID
MAX_REFERENCE = 50_000  # data set images in the reference, at most


class Features:
    """Streams a feature network's outputs: FID statistics of all rows, plus the first `keep`
    feature rows (for KID) and, for a classifier, all class probabilities (for IS)."""

    def __init__(self, dim: int, device: torch.device, keep: int):
        self.stats = FeatureStatistics(dim, device)
        self.keep = keep
        self.kept = 0
        self.rows: list[torch.Tensor] = []
        self.probs: list[torch.Tensor] = []

    def add(self, out: dict[str, torch.Tensor]) -> None:
        self.stats.update(out["features"])
        if self.kept < self.keep:
            self.rows.append(out["features"][: self.keep - self.kept].float().cpu())
            self.kept += len(self.rows[-1])
        if "probs" in out:
            self.probs.append(out["probs"].float().cpu())

    def features(self) -> torch.Tensor:
        return torch.cat(self.rows)  # (min(n, keep), d)


def reference_cache(cache_dir: Path, source: str, resolution: int, net_name: str, n: int) -> Path:
    """File of the cached reference features: named after everything they depend on."""
    if source == "builtin":
        data = f"builtin-v{builtin.VERSION}-{builtin.DEFAULT_SIZE}"
    else:
        data = f"{Path(source).resolve().name}-{cache_key(Path(source), resolution)}"
    key = hashlib.sha256(f"{data}\n{resolution}\n{net_name}\n{n}\n{CACHE_FORMAT}".encode())
    return cache_dir / "metrics" / f"{data}-{resolution}-{net_name}-{key.hexdigest()[:12]}.pt"


@torch.no_grad()
def reference_features(dataset, net, n: int, batch: int, device) -> dict[str, torch.Tensor]:
    """Mean, covariance and KID rows of `n` data set images (a fixed random subset)."""
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:n]
    acc = Features(net.dim, device, KID_ROWS)
    for start in range(0, n, batch):
        images = torch.stack([dataset[int(i)][0] for i in order[start : start + batch]])
        acc.add(net(images.to(device)))
    mu, sigma = acc.stats.compute()
    return {"mu": mu.cpu(), "sigma": sigma.cpu(), "features": acc.features(), "count": n}


def cached_reference(path: Path, compute) -> dict[str, torch.Tensor]:
    """The reference features from `path`, or computed by `compute()` and written there."""
    if path.is_file():
        try:
            return torch.load(path, weights_only=True)
        except (RuntimeError, EOFError, OSError) as err:
            print(f"warning: recomputing the reference, {path} is unreadable ({err})",
                  file=sys.stderr)
    computed = compute()
    try:
        save_atomic(computed, path)
    except OSError as err:  # a read-only or full cache: the numbers are still good
        print(f"warning: could not cache the reference in {path} ({err}); it is computed again "
              f"next time", file=sys.stderr)
    return computed


def for_dataset(dataset, source: str, resolution: int, cache_dir: Path, net, batch: int, device,
                n: int | None = None) -> tuple[dict[str, torch.Tensor], Path]:
    """(Reference features of `n` images of `dataset`, by default all of them up to
    `MAX_REFERENCE`; their cache file)."""
    n = min(len(dataset), n or MAX_REFERENCE)
    path = reference_cache(cache_dir, source, resolution, net.name, n)
    return cached_reference(path, lambda: reference_features(dataset, net, n, batch, device)), path


@torch.no_grad()
def generated_features(draw, z: torch.Tensor, y: torch.Tensor | None, net, batch: int,
                       keep_images: int = 0) -> tuple[Features, torch.Tensor | None]:
    """(Features of the images `draw(z_batch, y_batch)` makes from noise z (n, z_dim) and labels
    y (n,) or None, `batch` images at a time; the first `keep_images` images on the CPU, or None).
    """
    acc = Features(net.dim, z.device, len(z))
    kept = []
    for start in range(0, len(z), batch):
        images = draw(z[start : start + batch], None if y is None else y[start : start + batch])
        acc.add(net(images))
        if start < keep_images:
            kept.append(images[: keep_images - start].cpu())
    return acc, torch.cat(kept) if kept else None


def compare(ref: dict[str, torch.Tensor], fake: Features, kid_subsets: int = KID_SUBSETS) -> dict:
    """FID and KID of the generated features `fake` against the reference `ref`, and the
    Inception Score when the network is a classifier. KID averages `kid_subsets` random subsets
    of up to `KID_SUBSET_SIZE` rows."""
    device = fake.stats.sum.device
    mu, sigma = fake.stats.compute()
    rows = fake.features().to(device)
    subset_size = min(KID_SUBSET_SIZE, len(rows), len(ref["features"]))
    kid_mean, kid_std = scores.kernel_inception_distance(
        ref["features"].to(device), rows, kid_subsets, subset_size
    )
    results = {
        "fid": scores.frechet_distance(ref["mu"].to(device), ref["sigma"].to(device), mu, sigma),
        "kid": {"mean": kid_mean, "std": kid_std, "subsets": kid_subsets,
                "subset_size": subset_size},
    }
    if fake.probs:
        is_mean, is_std = scores.inception_score(torch.cat(fake.probs), IS_SPLITS)
        results["inception_score"] = {"mean": is_mean, "std": is_std, "splits": IS_SPLITS}
    return results
