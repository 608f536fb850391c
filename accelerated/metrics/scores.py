r"""FID, Inception Score and KID in PyTorch: the formulas of `reference.metrics`, in float64 on
whatever device the features live on.

- FID comes from streamed statistics (`FeatureStatistics`), so it needs memory for one
  (d, d) matrix, not for all the samples;
- IS and KID need the samples (class probabilities, features). KID evaluates its random subsets
  a chunk at a time with batched matrix products.

Each function returns Python floats and raises ValueError on bad input (too few samples,
mismatched dimensions, non-finite values, more splits than samples).
"""

from __future__ import annotations

import torch

from accelerated.metrics.statistics import check_features, feature_statistics
from reference.metrics import PROBABILITY_TOLERANCE, PSD_TOLERANCE  # rounding errors

# KID: at most this many float64 kernel entries per chunk of subsets (~200 MB).
KID_CHUNK_ENTRIES = 25_000_000


def _psd_eigenvalues(name: str, eigenvalues: torch.Tensor, floor: torch.Tensor) -> torch.Tensor:
    """Clip rounding-error negatives to 0; raise ValueError if an eigenvalue is truly negative.
    Rounding is judged against the largest eigenvalue, or `floor` (the scale of the inputs) if
    that is larger: a covariance of identical samples is ~0, all of it rounding error."""
    scale = torch.maximum(eigenvalues.abs().max(), floor).clamp_min(torch.finfo(torch.float64).tiny)
    if eigenvalues.min() < -PSD_TOLERANCE * scale:
        raise ValueError(
            f"{name} is not positive semi-definite (eigenvalue {eigenvalues.min().item():.3g}): "
            f"pass a covariance matrix"
        )
    return eigenvalues.clamp_min(0.0)


def trace_sqrt_product(sigma1: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
    r"""$\operatorname{Tr}(\Sigma_1\Sigma_2)^{1/2} = \sum_i \sqrt{\lambda_i(\Sigma_1^{1/2}\Sigma_2
    \Sigma_1^{1/2})}$ with symmetric eigensolvers (see `reference.metrics.trace_sqrt_product`)."""
    scale = sigma1.diagonal().abs().sum() + sigma2.diagonal().abs().sum()  # both traces
    lam, U = torch.linalg.eigh(sigma1)
    root1 = (U * _psd_eigenvalues("sigma1", lam, scale).sqrt()) @ U.T  # (d, d)
    M = root1 @ sigma2 @ root1
    lam_M = torch.linalg.eigvalsh((M + M.T) / 2)
    return _psd_eigenvalues("Sigma1^(1/2) Sigma2 Sigma1^(1/2)", lam_M, scale.square()).sqrt().sum()


def _covariance(name: str, sigma: torch.Tensor, d: int) -> torch.Tensor:
    if not isinstance(sigma, torch.Tensor) or tuple(sigma.shape) != (d, d):
        shape = tuple(sigma.shape) if isinstance(sigma, torch.Tensor) else type(sigma)
        raise ValueError(f"{name} has shape {shape}, expected ({d}, {d}) to match the mean")
    sigma = sigma.to(torch.float64)
    if not torch.isfinite(sigma).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if not torch.allclose(sigma, sigma.T, rtol=1e-8, atol=1e-12 * sigma.abs().max().item()):
        raise ValueError(f"{name} is not symmetric: pass a covariance matrix")
    return (sigma + sigma.T) / 2


def frechet_distance(
    mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor
) -> float:
    r"""Squared Fréchet distance $\lVert\mu_1-\mu_2\rVert^2 +
    \operatorname{Tr}(\Sigma_1+\Sigma_2-2(\Sigma_1\Sigma_2)^{1/2})$, clipped at 0 against rounding.
    mu (d,), sigma (d, d)."""
    for name, mu in (("mu1", mu1), ("mu2", mu2)):
        if not isinstance(mu, torch.Tensor) or mu.ndim != 1 or not torch.isfinite(mu).all():
            raise ValueError(f"{name} must be a finite 1-D tensor (the feature mean)")
    if mu1.shape != mu2.shape:
        raise ValueError(
            f"mu1 has {mu1.shape[0]} features and mu2 has {mu2.shape[0]}: both sets of statistics "
            f"must come from the same feature network"
        )
    d = mu1.shape[0]
    mu1, mu2 = mu1.to(torch.float64), mu2.to(torch.float64)
    sigma1, sigma2 = _covariance("sigma1", sigma1, d), _covariance("sigma2", sigma2, d)
    # --8<-- [start:fid]
    # ||mu1 - mu2||^2
    mean_term = (mu1 - mu2).square().sum()
    # Tr(Sigma1 + Sigma2 - 2 (Sigma1 Sigma2)^{1/2})
    cov_term = sigma1.trace() + sigma2.trace() - 2.0 * trace_sqrt_product(sigma1, sigma2)
    d2 = mean_term + cov_term
    # --8<-- [end:fid]
    return max(d2.item(), 0.0)


def _same_dims(f1: torch.Tensor, f2: torch.Tensor) -> None:
    check_features("features1", f1)
    check_features("features2", f2, f1.shape[1])


def fid(features1: torch.Tensor, features2: torch.Tensor) -> float:
    """FID between two feature tensors (n1, d) and (n2, d) held in memory on this process."""
    _same_dims(features1, features2)
    return frechet_distance(*feature_statistics(features1), *feature_statistics(features2))


def inception_score(probs: torch.Tensor, splits: int = 10) -> tuple[float, float]:
    r"""(mean, std) over `splits` consecutive splits of $\exp \mathbb E_x \mathrm{KL}(p(y|x) \Vert
    p(y))$; `probs` (n, K) rows sum to 1. Same splits and population std as Salimans et al."""
    check_features("probs", probs)
    n = probs.shape[0]
    if isinstance(splits, bool) or not isinstance(splits, int) or splits < 1:
        raise ValueError(f"splits must be an integer >= 1, got {splits!r}")
    if splits > n:
        raise ValueError(f"splits={splits} is more than the {n} samples: use splits <= n")
    P = probs.to(torch.float64)  # (n, K)
    if P.min() < 0 or (P.sum(dim=1) - 1).abs().max() > PROBABILITY_TOLERANCE:
        raise ValueError(
            "probs must hold probabilities (non-negative, rows summing to 1): apply a softmax to "
            "the logits first"
        )
    scores = []
    for s in range(splits):
        part = P[s * n // splits : (s + 1) * n // splits]  # (n_s, K)
        # --8<-- [start:inception-score]
        # p(y) = mean over the split of p(y|x)
        p_y = part.mean(dim=0, keepdim=True)  # (1, K)
        # KL(p(y|x) || p(y)) = sum_y p(y|x) log(p(y|x) / p(y)), with 0 log 0 = 0
        kl = (torch.xlogy(part, part) - torch.xlogy(part, p_y)).sum(dim=1)  # (n_s,)
        # IS = exp(E_x KL)
        scores.append(kl.mean().exp())
        # --8<-- [end:inception-score]
    scores = torch.stack(scores)
    return scores.mean().item(), scores.std(correction=0).item()


def polynomial_kernel(
    X: torch.Tensor, Y: torch.Tensor, degree: int = 3, gamma: float | None = None, coef0=1.0
) -> torch.Tensor:
    r"""$(\gamma\, x^\top y + c_0)^{\text{degree}}$ for all pairs: X (..., n, d), Y (..., m, d)
    -> (..., n, m); $\gamma = 1/d$ by default."""
    gamma = 1.0 / X.shape[-1] if gamma is None else gamma
    return (gamma * X @ Y.transpose(-1, -2) + coef0) ** degree


def mmd2_unbiased(
    X: torch.Tensor, Y: torch.Tensor, degree: int = 3, gamma: float | None = None, coef0=1.0
) -> torch.Tensor:
    r"""Unbiased MMD$^2$ with the polynomial kernel for X, Y (..., m, d) -> (...,): batched over
    leading dimensions (see `reference.metrics.mmd2_unbiased`)."""
    m = X.shape[-2]
    # --8<-- [start:kid]
    K_XX = polynomial_kernel(X, X, degree, gamma, coef0)  # (..., m, m)
    K_YY = polynomial_kernel(Y, Y, degree, gamma, coef0)  # (..., m, m)
    K_XY = polynomial_kernel(X, Y, degree, gamma, coef0)  # (..., m, m)
    # sum_{i != j} k(x_i, x_j) / (m (m-1)), the same for y
    sum_XX = K_XX.sum((-1, -2)) - K_XX.diagonal(dim1=-2, dim2=-1).sum(-1)
    sum_YY = K_YY.sum((-1, -2)) - K_YY.diagonal(dim1=-2, dim2=-1).sum(-1)
    within = (sum_XX + sum_YY) / (m * (m - 1))
    # 2 sum_{i, j} k(x_i, y_j) / m^2
    between = 2.0 * K_XY.sum((-1, -2)) / (m * m)
    mmd2 = within - between
    # --8<-- [end:kid]
    return mmd2


def random_subsets(n: int, subsets: int, subset_size: int, generator: torch.Generator):
    """(subsets, subset_size) row indices, each row a uniform subset drawn without replacement."""
    return torch.rand(subsets, n, generator=generator).argsort(dim=1)[:, :subset_size]


def kernel_inception_distance(
    features1: torch.Tensor,
    features2: torch.Tensor,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    seed: int = 0,
) -> tuple[float, float]:
    """KID: (mean, std) of the unbiased MMD^2 over `subsets` pairs of random subsets of
    `subset_size` rows (a CPU `torch.Generator` seeded with `seed` draws them)."""
    _same_dims(features1, features2)
    for name, value in (("subsets", subsets), ("subset_size", subset_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    n1, n2 = features1.shape[0], features2.shape[0]
    if not 2 <= subset_size <= min(n1, n2):
        raise ValueError(
            f"subset_size={subset_size} must be between 2 and the smaller number of samples "
            f"({min(n1, n2)}): lower subset_size or pass more samples"
        )
    f1, f2 = features1.to(torch.float64), features2.to(torch.float64)
    generator = torch.Generator().manual_seed(seed)
    idx1 = random_subsets(n1, subsets, subset_size, generator).to(f1.device)
    idx2 = random_subsets(n2, subsets, subset_size, generator).to(f2.device)
    chunk = max(1, KID_CHUNK_ENTRIES // (3 * subset_size * subset_size))
    mmds = torch.cat(
        [
            mmd2_unbiased(f1[i1], f2[i2], degree, gamma, coef0)  # (chunk,)
            for i1, i2 in zip(idx1.split(chunk), idx2.split(chunk), strict=True)
        ]
    )
    return mmds.mean().item(), mmds.std(correction=0).item()
