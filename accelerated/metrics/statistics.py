r"""Feature statistics streamed over batches.

FID needs the mean and covariance of tens of thousands of feature vectors, which arrive a batch at
a time. Keeping the raw sums is enough:

$$n, \qquad s = \sum_i x_i, \qquad S = \sum_i x_i x_i^\top,$$

because they add up over batches (and would over processes, with one `all_reduce` each), and

$$\mu = s / n, \qquad \Sigma = \frac{S - n\, \mu \mu^\top}{n - 1}.$$

The sums are kept in float64: $S - n \mu\mu^\top$ subtracts two large numbers, and in float32 the
cancellation would cost most of the digits of $\Sigma$ after a few thousand samples. In float64 the
relative error stays around $10^{-16}\, \lVert\mu\rVert^2 / \lambda_{\min}(\Sigma)$, far below the
sampling error of FID.

Evaluation runs in one process (a training run evaluates on rank 0 alone).
"""

from __future__ import annotations

import warnings

import torch


def check_features(name: str, features: torch.Tensor, dim: int | None = None) -> None:
    """Raise ValueError unless `features` is a finite (n, d) tensor (with d == dim when given)."""
    if not isinstance(features, torch.Tensor) or features.ndim != 2:
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features)
        raise ValueError(f"{name} must be a 2-D tensor (samples, features), got {shape}")
    if dim is not None and features.shape[1] != dim:
        raise ValueError(
            f"{name} has {features.shape[1]} features, expected {dim}: all features must come "
            f"from the same feature network"
        )
    if not torch.isfinite(features).all():
        raise ValueError(f"{name} contains NaN or infinite values: check the feature network input")


class FeatureStatistics:
    r"""Running $n$, $\sum x$ and $\sum x x^\top$ of `dim`-dimensional features, in float64 on
    `device` (a CUDA device for NCCL).

    `update(features)` adds a batch (B, dim); `compute()` returns $(\mu, \Sigma)$.
    """

    def __init__(self, dim: int, device: torch.device | str = "cpu"):
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        self.dim = dim
        self.count = torch.zeros((), dtype=torch.float64, device=device)
        self.sum = torch.zeros(dim, dtype=torch.float64, device=device)  # (d,)
        self.sum_outer = torch.zeros(dim, dim, dtype=torch.float64, device=device)  # (d, d)

    @torch.no_grad()
    def update(self, features: torch.Tensor) -> None:
        """Add a batch of features (B, dim)."""
        check_features("features", features, self.dim)
        x = features.to(device=self.sum.device, dtype=torch.float64)  # (B, d)
        self.count += x.shape[0]
        # s += sum_i x_i
        self.sum += x.sum(dim=0)
        # S += sum_i x_i x_i^T
        self.sum_outer += x.T @ x

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        r"""$(\mu, \Sigma)$ in float64, (dim,) and (dim, dim), with $n - 1$ in the denominator.

        Raises ValueError with fewer than 2 samples; warns (`UserWarning`) when $n \le$ `dim`,
        where $\Sigma$ is singular and FID strongly biased.
        """
        n, s, S = int(self.count.item()), self.sum, self.sum_outer
        if n < 2:
            raise ValueError(f"{n} samples seen: a covariance needs at least 2")
        if n <= self.dim:
            warnings.warn(
                f"{n} samples of {self.dim}-dimensional features: the covariance is singular "
                f"(rank <= n - 1) and FID is strongly biased; use many more samples than "
                f"feature dimensions",
                UserWarning,
                stacklevel=2,
            )
        # mu = s / n
        mu = s / n
        # Sigma = (S - n mu mu^T) / (n - 1)
        sigma = (S - n * torch.outer(mu, mu)) / (n - 1)
        return mu, (sigma + sigma.T) / 2


def feature_statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""$(\mu, \Sigma)$ of one tensor of features (n, d), on this process only."""
    check_features("features", features)
    stats = FeatureStatistics(features.shape[1], device=features.device)
    stats.update(features)
    return stats.compute()
