"""reference.spectral_norm: power iteration, W / sigma, its backward, against SVD and PyTorch."""

import numpy as np
import pytest
import torch
from _finite_differences import directional_derivative, inner, numerical_gradient
from hypothesis import given
from hypothesis import strategies as st

from reference.spectral_norm import power_iteration, spectral_norm, spectral_norm_backward

# weight shapes: linear (out, in), embedding (num, dim), conv kernels (out, in, kh, kw)
SHAPES = [(4, 6), (6, 3), (5, 5), (1, 7), (4, 2, 3, 3), (6, 3, 1, 1), (3, 2, 2, 1)]


@st.composite
def weights(draw):
    """A random weight of one of SHAPES and scale, and a random starting u."""
    shape = draw(st.sampled_from(SHAPES))
    scale = draw(st.floats(1e-2, 1e2))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return scale * rng.normal(size=shape), rng.normal(size=shape[0]), rng


@st.composite
def weights_with_spectral_gap(draw):
    """W = U diag(s) V^T with s_2 / s_1 <= 0.7, so the power iteration converges fast."""
    shape = draw(st.sampled_from(SHAPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    out, rest = shape[0], int(np.prod(shape[1:]))
    k = min(out, rest)
    U, _ = np.linalg.qr(rng.normal(size=(out, k)))
    V, _ = np.linalg.qr(rng.normal(size=(rest, k)))
    sigma_1 = draw(st.floats(1e-2, 1e2))
    s = sigma_1 * np.concatenate([[1.0], rng.uniform(0.0, 0.7, size=k - 1)])
    return ((U * s) @ V.T).reshape(shape), rng.normal(size=out), sigma_1


@given(weights_with_spectral_gap())
def test_power_iteration_converges_to_the_largest_singular_value(case):
    W, u0, sigma_1 = case
    sigma, u, v = power_iteration(W, u0, n_steps=100)
    W_mat = W.reshape(W.shape[0], -1)
    assert sigma == pytest.approx(np.linalg.svd(W_mat, compute_uv=False)[0], rel=1e-10)
    assert sigma == pytest.approx(sigma_1, rel=1e-10)
    # u, v are unit singular vectors: W v = sigma u
    np.testing.assert_allclose(W_mat @ v, sigma * u, rtol=0, atol=1e-9 * sigma)

    W_sn, _, _, _ = spectral_norm(W, u0, n_steps=100)
    assert W_sn.shape == W.shape
    assert np.linalg.norm(W_sn.reshape(W.shape[0], -1), ord=2) == pytest.approx(1.0, rel=1e-10)


@given(weights())
def test_estimate_improves_with_steps_and_never_exceeds_sigma(case):
    """sigma = u^T W v with unit u, v is a lower bound of the largest singular value."""
    W, u0, _ = case
    exact = np.linalg.norm(W.reshape(W.shape[0], -1), ord=2)
    sigma_1, _, _ = power_iteration(W, u0, n_steps=1)
    sigma_5, _, _ = power_iteration(W, u0, n_steps=5)
    assert 0 < sigma_1 <= sigma_5 * (1 + 1e-12)
    assert sigma_5 <= exact * (1 + 1e-12)


@given(weights())
def test_steps_compose_through_the_persistent_u(case):
    """Two calls of 1 step, carrying u over, equal one call of 2 steps."""
    W, u0, _ = case
    _, u1, _ = power_iteration(W, u0, n_steps=1)
    once = power_iteration(W, u1, n_steps=1)
    twice = power_iteration(W, u0, n_steps=2)
    for a, b in zip(once, twice, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


class WeightHolder(torch.nn.Module):
    """A module with only a `weight`, returned by forward: lets torch's SN run on any shape."""

    def __init__(self, W):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor(W))

    def forward(self):
        return self.weight


def _torch_legacy_spectral_norm(W, u0, n_steps, eps):
    """`torch.nn.utils.spectral_norm` (Miyato's order: v first from the persistent u)."""
    module = torch.nn.utils.spectral_norm(WeightHolder(W), n_power_iterations=n_steps, eps=eps)
    module.weight_u.copy_(torch.tensor(u0))
    W_sn = module().detach().numpy()  # training mode: n_steps power-iteration steps, then W/sigma
    return W_sn, module.weight_u.numpy(), module.weight_v.numpy()


@given(weights(), st.integers(1, 3))
def test_matches_pytorch_spectral_norm_from_the_same_u(case, n_steps):
    W, u0, _ = case
    W_sn, _, u, v = spectral_norm(W, u0, n_steps=n_steps)
    W_sn_t, u_t, v_t = _torch_legacy_spectral_norm(W, u0, n_steps, eps=1e-12)
    np.testing.assert_allclose(W_sn, W_sn_t, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(u, u_t, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(v, v_t, rtol=1e-12, atol=1e-15)


def test_eps_clamps_tiny_norms_like_pytorch():
    """||W^T u|| < eps: both divide by eps instead of the norm (F.normalize's max(norm, eps))."""
    rng = np.random.default_rng(3)
    W, u0 = 1e-9 * rng.normal(size=(3, 4)), rng.normal(size=3)
    u0 /= np.linalg.norm(u0)
    _, u, v = power_iteration(W, u0, eps=1e-6)
    _, u_t, v_t = _torch_legacy_spectral_norm(W, u0, 1, eps=1e-6)
    assert np.linalg.norm(v) < 1e-2  # clamped: v is not a unit vector
    np.testing.assert_allclose(v, v_t, rtol=1e-12, atol=0)
    np.testing.assert_allclose(u, u_t, rtol=1e-12, atol=0)


@given(weights())
def test_parametrization_is_the_same_iteration_on_the_transpose(case):
    """`parametrizations.spectral_norm` keeps v and updates u first: our iteration on W^T."""
    W, _, rng = case
    W_mat = W.reshape(W.shape[0], -1)  # (out, rest), as both implementations read W
    v0 = rng.normal(size=W_mat.shape[1])
    module = torch.nn.utils.parametrizations.spectral_norm(WeightHolder(W))
    sn = module.parametrizations.weight[0]
    sn._v.copy_(torch.tensor(v0))
    W_sn_t = module().detach().numpy()  # training mode: one power-iteration step, then W/sigma

    sigma, v, u = power_iteration(W_mat.T, v0)  # roles of u and v swapped
    np.testing.assert_allclose(W / sigma, W_sn_t, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(u, sn._u.numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(v, sn._v.numpy(), rtol=1e-12, atol=1e-15)


@given(weights())
def test_backward_matches_finite_differences_along_a_random_direction(case):
    W, u0, rng = case
    _, _, u, v = spectral_norm(W, u0)
    dW_sn = rng.normal(size=W.shape)
    dW = spectral_norm_backward(dW_sn, W, u, v)

    def loss(W):  # u, v held constant, as in training
        sigma = u @ W.reshape(W.shape[0], -1) @ v
        return float(np.sum(dW_sn * W / sigma))

    d = {"W": np.abs(W).max() * rng.normal(size=W.shape)}
    numeric = directional_derivative(loss, {"W": W}, d, eps=1e-7)
    # tolerance relative to |dW| |d|: <dW, d> itself may be small by cancellation
    scale = np.linalg.norm(dW) * np.linalg.norm(d["W"])
    assert inner({"W": dW}, d) == pytest.approx(numeric, rel=1e-6, abs=1e-7 * scale)


def test_backward_matches_finite_differences_elementwise_and_pytorch():
    rng = np.random.default_rng(2)
    W = rng.normal(size=(3, 2, 2, 2))
    _, _, u, v = spectral_norm(W, rng.normal(size=3), n_steps=3)
    dW_sn = rng.normal(size=W.shape)
    dW = spectral_norm_backward(dW_sn, W, u, v)

    def loss(W):
        return float(np.sum(dW_sn * W / (u @ W.reshape(3, -1) @ v)))

    np.testing.assert_allclose(dW, numerical_gradient(loss, {"W": W}, "W"), rtol=1e-6, atol=1e-9)
    W_t = torch.tensor(W, requires_grad=True)
    (W_t / (torch.tensor(u) @ W_t.reshape(3, -1) @ torch.tensor(v))).backward(torch.tensor(dW_sn))
    np.testing.assert_allclose(dW, W_t.grad.numpy(), rtol=1e-12, atol=1e-14)


U3 = np.ones(3)
W34 = np.arange(12.0).reshape(3, 4) - 5
BAD_POWER_ITERATION = {
    "W of rank 1": ((np.ones(3), U3), {}, "W must have at least 2 dimensions"),
    "u of wrong length": ((W34, np.ones(4)), {}, r"u has shape \(4,\), expected \(3,\)"),
    "u of rank 2": ((W34, np.ones((3, 1))), {}, "u must have 1 dimensions"),
    "u zero": ((W34, np.zeros(3)), {}, "u is the zero vector"),
    "W with NaN": ((np.full((3, 4), np.nan), U3), {}, "W contains NaN"),
    "u infinite": ((W34, np.array([1.0, np.inf, 0.0])), {}, "u contains NaN or infinite"),
    "zero steps": ((W34, U3), {"n_steps": 0}, "n_steps must be an integer >= 1"),
    "fractional steps": ((W34, U3), {"n_steps": 1.5}, "n_steps must be an integer >= 1"),
    "eps zero": ((W34, U3), {"eps": 0.0}, "eps must be positive"),
}


@pytest.mark.parametrize(
    "args, kwargs, message", BAD_POWER_ITERATION.values(), ids=BAD_POWER_ITERATION.keys()
)
def test_bad_input_raises_a_clear_error(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        power_iteration(*args, **kwargs)
    with pytest.raises(ValueError, match=message):
        spectral_norm(*args, **kwargs)


def test_zero_weight_cannot_be_normalised():
    with pytest.raises(ValueError, match="sigma is 0"):
        spectral_norm(np.zeros((3, 4)), U3)


BAD_BACKWARD = {
    "dW_sn of wrong shape": ((np.ones((4, 3)), W34, U3, np.ones(4)), "dW_sn has shape"),
    "v of wrong length": ((np.ones((3, 4)), W34, U3, np.ones(3)), r"v has shape \(3,\)"),
    "u of wrong length": ((np.ones((3, 4)), W34, np.ones(2), np.ones(4)), r"u has shape \(2,\)"),
    "dW_sn with NaN": ((np.full((3, 4), np.nan), W34, U3, np.ones(4)), "dW_sn contains NaN"),
    "u, v with u^T W v = 0": ((np.ones((3, 4)), np.zeros((3, 4)), U3, np.ones(4)), "sigma"),
}


@pytest.mark.parametrize("args, message", BAD_BACKWARD.values(), ids=BAD_BACKWARD.keys())
def test_bad_backward_input_raises_a_clear_error(args, message):
    with pytest.raises(ValueError, match=message):
        spectral_norm_backward(*args)
