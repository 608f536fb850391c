"""The NumPy metrics (reference/metrics.py): FID, Inception Score, KID.

FID is checked against the original formula with `scipy.linalg.sqrtm`, against closed forms
(a pure mean shift; Gaussians whose covariances commute) and for its symmetries; IS against the
entropy identity and its two extremes; the unbiased MMD against a plain double loop.
"""

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given
from hypothesis import strategies as st

from reference.metrics import (
    feature_statistics,
    fid,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
    mmd2_unbiased,
    polynomial_kernel,
    trace_sqrt_product,
)

seeds = st.integers(0, 2**32 - 1)
dims = st.integers(1, 6)


def gaussian_features(seed: int, n: int, d: int) -> np.ndarray:
    """n samples of a random correlated Gaussian in d dimensions, with a random mean and scale."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(d, d)) * rng.uniform(0.1, 3.0)
    return rng.normal(size=(n, d)) @ A + rng.normal(size=d) * 2


def cov(f: np.ndarray) -> np.ndarray:
    """numpy's sample covariance of the rows, as a (d, d) matrix also when d = 1."""
    return np.atleast_2d(np.cov(f, rowvar=False))


@given(seeds, seeds, dims)
def test_fid_matches_the_original_sqrtm_formula(seed1, seed2, d):
    f1, f2 = gaussian_features(seed1, 40, d), gaussian_features(seed2, 50, d)
    mu1, s1 = np.mean(f1, 0), cov(f1)
    mu2, s2 = np.mean(f2, 0), cov(f2)
    # the formula of the TTUR paper's code (and pytorch-fid): Tr sqrtm(S1 S2), real part
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert fid(f1, f2) == pytest.approx(expected, rel=1e-7, abs=1e-8 * np.trace(s1 + s2))


@given(seeds, dims)
def test_feature_statistics_match_numpy(seed, d):
    f = gaussian_features(seed, 30, d)
    mu, sigma = feature_statistics(f)
    np.testing.assert_allclose(mu, f.mean(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sigma, cov(f), rtol=1e-10, atol=1e-12)


@given(seeds, dims)
def test_fid_of_a_set_with_itself_is_zero(seed, d):
    f = gaussian_features(seed, 30, d)
    # an eigenvalue near 0 is known to ~eps * lambda_max, its square root only to ~1e-8 of the
    # scale: near-singular covariances leave ~1e-8 * Tr(Sigma) per dimension
    assert fid(f, f) == pytest.approx(0.0, abs=1e-7 * d * np.trace(cov(f)))


@given(seeds, seeds, dims)
def test_fid_is_symmetric_non_negative_and_order_invariant(seed1, seed2, d):
    f1, f2 = gaussian_features(seed1, 30, d), gaussian_features(seed2, 25, d)
    d12 = fid(f1, f2)
    assert d12 >= 0
    assert fid(f2, f1) == pytest.approx(d12, rel=1e-8, abs=1e-9)
    perm = np.random.default_rng(seed1).permutation(len(f1))
    assert fid(f1[perm], f2) == pytest.approx(d12, rel=1e-8, abs=1e-9)


@given(seeds, dims, st.floats(0.01, 10.0))
def test_a_mean_shift_adds_its_squared_length(seed, d, size):
    # same covariance, so d^2 = ||delta||^2 exactly; larger shifts give larger FID
    f = gaussian_features(seed, 30, d)
    direction = np.random.default_rng(seed + 1).normal(size=d)
    direction /= np.linalg.norm(direction)
    shifts = [size * 0.5, size, size * 2.0]
    fids = [fid(f, f + s * direction) for s in shifts]
    scale = np.trace(cov(f))
    for s, value in zip(shifts, fids, strict=True):
        assert value == pytest.approx(s**2, rel=1e-7, abs=1e-8 * scale)
    assert fids[0] < fids[1] < fids[2]


@given(seeds, dims)
def test_commuting_covariances_match_the_closed_form(seed, d):
    # Sigma_k = Q diag(lambda_k) Q^T:
    # d^2 = ||mu1 - mu2||^2 + sum_i (sqrt(lambda_1i) - sqrt(lambda_2i))^2
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    lam1, lam2 = rng.uniform(0.0, 4.0, size=(2, d))
    mu1, mu2 = rng.normal(size=(2, d))
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(lam1) - np.sqrt(lam2)) ** 2)
    got = frechet_distance(mu1, (Q * lam1) @ Q.T, mu2, (Q * lam2) @ Q.T)
    assert got == pytest.approx(expected, rel=1e-7, abs=1e-9)


def test_fid_of_gaussian_samples_approaches_the_closed_form():
    rng = np.random.default_rng(0)
    n = 200_000
    std1, std2 = np.array([1.0, 2.0, 0.5]), np.array([1.5, 1.0, 0.5])
    mu1, mu2 = np.zeros(3), np.array([1.0, 0.0, -1.0])
    f1 = mu1 + rng.normal(size=(n, 3)) * std1
    f2 = mu2 + rng.normal(size=(n, 3)) * std2
    exact = np.sum((mu1 - mu2) ** 2) + np.sum((std1 - std2) ** 2)  # 2 + 0.25 + 1 = 3.25
    # measured over 30 seeds: relative error mean -0.0007, SD 0.0035, worst 0.0082; 0.02 is 6 SDs
    # (a formula missing the covariance term is off by 38%)
    assert fid(f1, f2) == pytest.approx(exact, rel=0.02)


@given(seeds, st.integers(2, 6))
def test_trace_sqrt_product_handles_singular_covariances(seed, d):
    # rank-1 covariances (n = 2 samples): a general sqrtm struggles, the eigh form does not
    rng = np.random.default_rng(seed)
    u, v = rng.normal(size=(2, d))
    s1, s2 = np.outer(u, u), np.outer(v, v)
    # Tr (u u^T v v^T)^{1/2} = |u . v|
    assert trace_sqrt_product(s1, s2) == pytest.approx(abs(u @ v), rel=1e-6, abs=1e-7)


def test_few_samples_warn_and_too_few_raise():
    f = np.random.default_rng(0).normal(size=(4, 8))
    with pytest.warns(UserWarning, match="singular"):
        value = fid(f, f + 1.0)
    assert value == pytest.approx(8.0, rel=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        feature_statistics(f[:1])


def test_bad_fid_inputs_raise():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(20, 3))
    with pytest.raises(ValueError, match="same feature network"):
        fid(f, rng.normal(size=(20, 4)))
    with pytest.raises(ValueError, match="NaN"):
        fid(f, np.where(f > 1, np.nan, f))
    mu, sigma = feature_statistics(f)
    with pytest.raises(ValueError, match="positive semi-definite"):
        frechet_distance(mu, sigma, mu, -sigma)
    with pytest.raises(ValueError, match="symmetric"):
        frechet_distance(mu, sigma + np.triu(np.ones((3, 3)), 1), mu, sigma)
    with pytest.raises(ValueError, match="expected"):
        frechet_distance(mu, sigma[:2, :2], mu, sigma)


def dirichlet_probs(seed: int, n: int, k: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(k, rng.uniform(0.05, 2.0)), size=n)


def entropy(p: np.ndarray) -> np.ndarray:
    return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=-1)


@given(seeds, st.integers(2, 8), st.integers(1, 4))
def test_inception_score_equals_the_entropy_identity(seed, k, splits):
    # E_x KL(p(y|x) || p(y)) = H(p(y)) - E_x H(p(y|x)), per split
    P = dirichlet_probs(seed, 24, k)
    mean, std = inception_score(P, splits)
    parts = np.array_split(P, splits)  # 24 rows: equal splits, same as floor(s n / S) bounds
    scores = [np.exp(entropy(p.mean(0)) - entropy(p).mean()) for p in parts]
    assert mean == pytest.approx(np.mean(scores), rel=1e-10)
    assert std == pytest.approx(np.std(scores), rel=1e-8, abs=1e-10)
    assert 1.0 - 1e-12 <= mean <= k + 1e-12


@given(seeds, st.integers(1, 10))
def test_inception_score_is_one_for_identical_predictions(seed, k):
    row = dirichlet_probs(seed, 1, k)
    mean, std = inception_score(np.repeat(row, 12, axis=0), splits=3)
    assert mean == pytest.approx(1.0, abs=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


@given(st.integers(1, 10), st.integers(1, 5))
def test_inception_score_is_k_for_confident_uniform_predictions(k, splits):
    # every split holds each class equally often, each image classified with certainty
    labels = np.tile(np.arange(k), 2 * splits)
    mean, std = inception_score(np.eye(k)[labels], splits)
    assert mean == pytest.approx(k, rel=1e-12)
    assert std == pytest.approx(0.0, abs=1e-9)


def test_bad_inception_score_inputs_raise():
    P = dirichlet_probs(0, 5, 3)
    with pytest.raises(ValueError, match="splits=6 is more than the 5 samples"):
        inception_score(P, splits=6)
    with pytest.raises(ValueError, match="softmax"):
        inception_score(P * 2, splits=1)
    with pytest.raises(ValueError, match="splits must be an integer"):
        inception_score(P, splits=0)


@given(seeds, st.integers(2, 7), st.integers(1, 4), st.sampled_from([1, 2, 3]))
def test_mmd2_unbiased_matches_a_double_loop(seed, m, d, degree):
    rng = np.random.default_rng(seed)
    X, Y = rng.normal(size=(2, m, d))

    def k(a, b):
        return (a @ b / d + 1.0) ** degree

    pairs = [(i, j) for i in range(m) for j in range(m) if i != j]
    expected = (
        sum(k(X[i], X[j]) + k(Y[i], Y[j]) for i, j in pairs) / (m * (m - 1))
        - 2 * sum(k(X[i], Y[j]) for i in range(m) for j in range(m)) / m**2
    )
    assert mmd2_unbiased(X, Y, degree) == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert polynomial_kernel(X, Y, degree).shape == (m, m)


def test_kid_is_unbiased_near_zero_for_one_distribution_and_positive_for_a_shift():
    rng = np.random.default_rng(0)
    # the average of the unbiased estimate over independent pairs of samples is ~0, and single
    # estimates are negative about as often as positive. Measured over 100 seeds of this test:
    # |mean| / standard error at most 2.56 (a normal mean exceeds 3 in 1 draw of 370, 4 in 1 of
    # 16,000; the biased V-statistic sits 43 standard errors high); the share of negative
    # estimates 0.559, SD 0.024, from 0.50 to 0.615
    estimates = np.array([mmd2_unbiased(*rng.normal(size=(2, 20, 4))) for _ in range(400)])
    assert abs(estimates.mean()) < 4 * estimates.std() / np.sqrt(len(estimates))
    assert 0.3 < np.mean(estimates < 0) < 0.7
    f1, f2 = rng.normal(size=(2, 300, 4))
    same, _ = kernel_inception_distance(f1, f2, subsets=20, subset_size=50)
    shifted, _ = kernel_inception_distance(f1, f2 + 1.0, subsets=20, subset_size=50)
    # over 300 seeds: same has mean -0.002, SD 0.039, |same| up to 0.116 (the old bound 0.1 was
    # 2.6 SDs: about 1 seed in 100 failed); shifted mean 9.5, SD 1.2, lowest 6.6 (100 seeds)
    assert shifted > 1.0 and abs(same) < 0.25


def test_kid_on_the_whole_sets_is_one_mmd_and_seeds_reproduce():
    rng = np.random.default_rng(1)
    f1, f2 = rng.normal(size=(2, 30, 3))
    mean, std = kernel_inception_distance(f1, f2, subsets=3, subset_size=30)
    assert mean == pytest.approx(mmd2_unbiased(f1, f2), rel=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)
    a = kernel_inception_distance(f1, f2, subsets=5, subset_size=10, seed=3)
    assert a == kernel_inception_distance(f1, f2, subsets=5, subset_size=10, seed=3)
    assert a != kernel_inception_distance(f1, f2, subsets=5, subset_size=10, seed=4)


def test_bad_kid_inputs_raise():
    rng = np.random.default_rng(0)
    f1, f2 = rng.normal(size=(2, 10, 3))
    with pytest.raises(ValueError, match="subset_size=11"):
        kernel_inception_distance(f1, f2, subsets=2, subset_size=11)
    with pytest.raises(ValueError, match="same feature network"):
        kernel_inception_distance(f1, f2[:, :2], subsets=2, subset_size=5)
