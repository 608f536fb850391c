r"""Sample-quality metrics of GANs: Fréchet Inception Distance, Inception Score, KID.

All three compare *features* of images rather than pixels: a fixed network (the TensorFlow
Inception-v3 of 2015-12-05 in the SAGAN paper, or the project's offline random network for the
built-in data set) maps each image to a feature vector and, for the Inception Score, to class
probabilities. This file computes the metrics from those arrays, in float64 NumPy.

**FID** (Heusel et al. 2017). Fit a Gaussian to each set of features,
$\mathcal N(\mu_1, \Sigma_1)$ for one and $\mathcal N(\mu_2, \Sigma_2)$ for the other, and take the
squared Fréchet (2-Wasserstein) distance between the two Gaussians:

$$d^2 = \lVert \mu_1 - \mu_2 \rVert^2
      + \operatorname{Tr}\!\left(\Sigma_1 + \Sigma_2 - 2\,(\Sigma_1 \Sigma_2)^{1/2}\right).$$

Lower is better; 0 when the two Gaussians are the same. The SAGAN paper reports FID 18.65 on
ImageNet 128x128 with 50,000 samples and $d = 2048$ features.

**IS** (Salimans et al. 2016). With $p(y \mid x)$ the classifier's class probabilities for image $x$
and $p(y) = \mathbb E_x\, p(y \mid x)$ their marginal over the samples,

$$\mathrm{IS} = \exp\!\Big(\mathbb E_x\, \mathrm{KL}\big(p(y \mid x)\,\Vert\, p(y)\big)\Big),$$

between 1 (every image gets the same prediction) and the number of classes (every image is
classified with certainty and the classes are used uniformly). Higher is better. Computed on 10
splits of the samples and reported as mean and standard deviation over the splits (SAGAN: 52.52).

**KID** (Bińkowski et al. 2018). The squared maximum mean discrepancy between the two feature
distributions with the polynomial kernel $k(x, y) = (x^\top y / d + 1)^3$, estimated *without
bias*, so that it is near 0 (and may be negative) for two samples of one distribution, for any
sample size. It is averaged over random subsets.

These functions take arrays, not images, so a student can test them on any numbers; the
`accelerated.metrics` package computes the same in PyTorch, streamed over batches.
"""

import warnings

import numpy as np
from scipy.special import rel_entr

from reference._checks import as_finite_array, check_positive_int

# How negative an eigenvalue of a covariance may be (relative to the largest) and still be taken
# for rounding error of a positive semi-definite matrix.
PSD_TOLERANCE = 1e-6
# How far the rows of a probability array may sum from 1.
PROBABILITY_TOLERANCE = 1e-4


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    r"""Mean $\mu$ (d,) and covariance $\Sigma$ (d, d) of `features` (n, d), with $n - 1$ in the
    denominator (as `numpy.cov`, the convention of the reference FID code).

    $$\mu = \frac1n \sum_i x_i, \qquad
    \Sigma = \frac{1}{n-1} \sum_i (x_i - \mu)(x_i - \mu)^\top.$$

    Needs $n \ge 2$. With $n \le d$, $\Sigma$ has rank at most $n - 1 < d$ and is singular: the
    Fréchet distance below still works (it never inverts $\Sigma$), but the estimate is badly
    biased, so a `UserWarning` says so. Use $n \gg d$ (the paper: 50,000 samples for $d = 2048$).
    """
    X = as_finite_array("features", features, ndim=2)  # (n, d)
    n, d = X.shape
    if n < 2:
        raise ValueError(f"features has {n} row: a covariance needs at least 2 samples")
    if n <= d:
        warnings.warn(
            f"{n} samples of {d}-dimensional features: the covariance is singular (rank <= n - 1) "
            f"and FID is strongly biased; use many more samples than feature dimensions",
            UserWarning,
            stacklevel=2,
        )
    mu = X.mean(axis=0)  # (d,)
    centred = X - mu  # (n, d)
    sigma = centred.T @ centred / (n - 1)  # (d, d)
    return mu, sigma


def _check_covariance(name: str, sigma, d: int) -> np.ndarray:
    """`sigma` as a float64 (d, d) symmetric matrix; raises ValueError otherwise."""
    sigma = as_finite_array(name, sigma, ndim=2)
    if sigma.shape != (d, d):
        raise ValueError(f"{name} has shape {sigma.shape}, expected ({d}, {d}) to match the mean")
    if not np.allclose(sigma, sigma.T, rtol=1e-8, atol=1e-12 * np.abs(sigma).max()):
        raise ValueError(f"{name} is not symmetric: pass a covariance matrix")
    return (sigma + sigma.T) / 2


def _psd_eigenvalues(name: str, eigenvalues: np.ndarray) -> np.ndarray:
    """Clip rounding-error negatives to 0; raise ValueError if an eigenvalue is truly negative."""
    scale = max(float(np.abs(eigenvalues).max()), np.finfo(np.float64).tiny)
    if eigenvalues.min() < -PSD_TOLERANCE * scale:
        raise ValueError(
            f"{name} is not positive semi-definite (eigenvalue {eigenvalues.min():.3g}): "
            f"pass a covariance matrix"
        )
    return np.clip(eigenvalues, 0.0, None)


def psd_sqrt(sigma, name: str = "sigma") -> np.ndarray:
    r"""The symmetric square root $\Sigma^{1/2} = U \Lambda^{1/2} U^\top$ of a covariance, from
    its eigendecomposition $\Sigma = U \Lambda U^\top$ (rounding-error negative eigenvalues set to
    0)."""
    sigma = np.asarray(sigma, dtype=np.float64)
    lam, U = np.linalg.eigh(sigma)
    lam = _psd_eigenvalues(name, lam)
    return (U * np.sqrt(lam)) @ U.T


def trace_sqrt_product(sigma1, sigma2) -> float:
    r"""$\operatorname{Tr}\,(\Sigma_1 \Sigma_2)^{1/2}$ for two covariances, computed stably.

    $\Sigma_1 \Sigma_2$ is not symmetric, and a general matrix square root of it
    (`scipy.linalg.sqrtm`, used by the original FID code) can return complex numbers or fail
    for singular covariances. But $\Sigma_1 \Sigma_2$ is similar to the symmetric
    positive semi-definite $M = \Sigma_1^{1/2} \Sigma_2 \Sigma_1^{1/2}$
    (conjugate by $\Sigma_1^{1/2}$), so they share eigenvalues $\lambda_i \ge 0$ and

    $$\operatorname{Tr}\,(\Sigma_1 \Sigma_2)^{1/2} = \sum_i \sqrt{\lambda_i(M)},$$

    which a symmetric eigensolver computes accurately, singular or not.
    """
    root1 = psd_sqrt(sigma1, "sigma1")  # (d, d)
    # M = Sigma1^{1/2} Sigma2 Sigma1^{1/2}, symmetrised against rounding
    M = root1 @ sigma2 @ root1
    M = (M + M.T) / 2
    lam = _psd_eigenvalues("Sigma1^(1/2) Sigma2 Sigma1^(1/2)", np.linalg.eigvalsh(M))
    return float(np.sqrt(lam).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    r"""Squared Fréchet distance of $\mathcal N(\mu_1, \Sigma_1)$ and $\mathcal N(\mu_2, \Sigma_2)$.

    $$d^2 = \lVert \mu_1 - \mu_2 \rVert^2 + \operatorname{Tr}\Sigma_1 + \operatorname{Tr}\Sigma_2
            - 2 \operatorname{Tr}\,(\Sigma_1 \Sigma_2)^{1/2}.$$

    `mu1`, `mu2` (d,); `sigma1`, `sigma2` (d, d) symmetric positive semi-definite. The result is
    $\ge 0$ up to rounding; tiny negative values from rounding are returned as 0.
    """
    mu1 = as_finite_array("mu1", mu1, ndim=1)
    mu2 = as_finite_array("mu2", mu2, ndim=1)
    if mu1.shape != mu2.shape:
        raise ValueError(
            f"mu1 has {mu1.shape[0]} features and mu2 has {mu2.shape[0]}: both sets of statistics "
            f"must come from the same feature network"
        )
    d = mu1.shape[0]
    sigma1 = _check_covariance("sigma1", sigma1, d)
    sigma2 = _check_covariance("sigma2", sigma2, d)
    # --8<-- [start:fid]
    # ||mu1 - mu2||^2
    mean_term = float(np.sum((mu1 - mu2) ** 2))
    # Tr(Sigma1 + Sigma2 - 2 (Sigma1 Sigma2)^{1/2})
    cov_term = np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2)
    d2 = mean_term + cov_term
    # --8<-- [end:fid]
    return max(float(d2), 0.0)


def _feature_pair(features1, features2):
    """Both feature sets as finite (n, d) arrays of one dimension d, or a clear ValueError."""
    f1 = as_finite_array("features1", features1, ndim=2)
    f2 = as_finite_array("features2", features2, ndim=2)
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(
            f"features1 has {f1.shape[1]} dimensions and features2 has {f2.shape[1]}: both must "
            f"come from the same feature network"
        )
    return f1, f2


def fid(features1, features2) -> float:
    r"""FID between two sets of features (n1, d) and (n2, d): the Fréchet distance of their
    Gaussian fits (`feature_statistics`)."""
    f1, f2 = _feature_pair(features1, features2)
    return frechet_distance(*feature_statistics(f1), *feature_statistics(f2))


def inception_score(probs, splits: int = 10) -> tuple[float, float]:
    r"""Inception Score of class probabilities `probs` (n, K) (rows sum to 1): (mean, std) over
    `splits` consecutive splits, as in the original code of Salimans et al. (no shuffling; split
    $s$ holds rows $\lfloor s n / S \rfloor$ to $\lfloor (s+1) n / S \rfloor$; population std).

    Per split,

    $$\mathrm{IS} = \exp\Big(\frac1{|S|}\sum_{x \in S}
        \sum_y p(y \mid x) \log \frac{p(y \mid x)}{p(y)}\Big),\qquad
        p(y) = \frac1{|S|}\sum_{x \in S} p(y \mid x),$$

    with $0 \log 0 = 0$.
    """
    P = as_finite_array("probs", probs, ndim=2)  # (n, K)
    n = P.shape[0]
    splits = check_positive_int("splits", splits)
    if splits > n:
        raise ValueError(f"splits={splits} is more than the {n} samples: use splits <= n")
    if P.min() < 0 or np.abs(P.sum(axis=1) - 1).max() > PROBABILITY_TOLERANCE:
        raise ValueError(
            "probs must hold probabilities (non-negative, rows summing to 1): apply a softmax to "
            "the logits first"
        )
    scores = []
    for s in range(splits):
        part = P[s * n // splits : (s + 1) * n // splits]  # (n_s, K)
        # --8<-- [start:inception-score]
        # p(y) = mean over the split of p(y|x)
        p_y = part.mean(axis=0, keepdims=True)  # (1, K)
        # KL(p(y|x) || p(y)) = sum_y p(y|x) log(p(y|x) / p(y))   (rel_entr: 0 log 0 = 0)
        kl = rel_entr(part, p_y).sum(axis=1)  # (n_s,)
        # IS = exp(E_x KL)
        scores.append(np.exp(kl.mean()))
        # --8<-- [end:inception-score]
    return float(np.mean(scores)), float(np.std(scores))


def polynomial_kernel(X, Y, degree: int = 3, gamma: float | None = None, coef0: float = 1.0):
    r"""$k(x, y) = (\gamma\, x^\top y + c_0)^{\text{degree}}$ for all pairs of rows: (n, m).
    $\gamma$ defaults to $1/d$."""
    gamma = 1.0 / X.shape[1] if gamma is None else gamma
    return (gamma * X @ Y.T + coef0) ** degree


def mmd2_unbiased(X, Y, degree: int = 3, gamma: float | None = None, coef0: float = 1.0) -> float:
    r"""Unbiased estimate of the squared MMD between the distributions of the rows of `X` (m, d)
    and `Y` (m, d) with the polynomial kernel:

    $$\widehat{\mathrm{MMD}}^2_u = \frac{1}{m(m-1)}\sum_{i \ne j} k(x_i, x_j)
        + \frac{1}{m(m-1)}\sum_{i \ne j} k(y_i, y_j)
        - \frac{2}{m^2}\sum_{i, j} k(x_i, y_j).$$

    Leaving out the diagonal $i = j$ removes the bias, so the expectation is exactly the MMD (0
    for equal distributions) and a single estimate may be negative.
    """
    m = X.shape[0]
    # --8<-- [start:kid]
    K_XX = polynomial_kernel(X, X, degree, gamma, coef0)  # (m, m)
    K_YY = polynomial_kernel(Y, Y, degree, gamma, coef0)  # (m, m)
    K_XY = polynomial_kernel(X, Y, degree, gamma, coef0)  # (m, m)
    # sum_{i != j} k(x_i, x_j) / (m (m-1)), the same for y
    within = (K_XX.sum() - np.trace(K_XX) + K_YY.sum() - np.trace(K_YY)) / (m * (m - 1))
    # 2 sum_{i, j} k(x_i, y_j) / m^2
    between = 2.0 * K_XY.sum() / (m * m)
    mmd2 = within - between
    # --8<-- [end:kid]
    return float(mmd2)


def kernel_inception_distance(
    features1,
    features2,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    seed: int = 0,
) -> tuple[float, float]:
    r"""KID between features (n1, d) and (n2, d): (mean, std) of `mmd2_unbiased` over `subsets`
    pairs of random subsets of `subset_size` rows each (drawn without replacement with
    `numpy.random.default_rng(seed)`), as in Bińkowski et al.'s code (defaults: 100 subsets of
    1000, polynomial kernel of degree 3, $\gamma = 1/d$, $c_0 = 1$)."""
    f1, f2 = _feature_pair(features1, features2)
    subsets = check_positive_int("subsets", subsets)
    subset_size = check_positive_int("subset_size", subset_size)
    n = min(f1.shape[0], f2.shape[0])
    if not 2 <= subset_size <= n:
        raise ValueError(
            f"subset_size={subset_size} must be between 2 and the smaller number of samples ({n}): "
            f"lower subset_size or pass more samples"
        )
    rng = np.random.default_rng(seed)
    mmds = []
    for _ in range(subsets):
        X = f1[rng.choice(f1.shape[0], subset_size, replace=False)]  # (m, d)
        Y = f2[rng.choice(f2.shape[0], subset_size, replace=False)]  # (m, d)
        mmds.append(mmd2_unbiased(X, Y, degree, gamma, coef0))
    return float(np.mean(mmds)), float(np.std(mmds))
