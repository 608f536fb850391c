"""reference.attention: eqs. (1)-(3) of SAGAN, their hand-written backward, and bad input."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _finite_differences import directional_derivative, inner, numerical_gradient
from hypothesis import given
from hypothesis import strategies as st

from reference.attention import (
    attention_dims,
    max_pool_2x2,
    max_pool_2x2_backward,
    self_attention,
    self_attention_backward,
)

PARAMS = ("x", "W_f", "W_g", "W_h", "W_v", "gamma")


@st.composite
def blocks(draw, variants=("paper", "official")):
    """A random attention block: inputs, weights and gamma, with the variant's channel sizes."""
    variant = draw(st.sampled_from(variants))
    C = draw(st.sampled_from([8, 16]))
    c_qk, c_v, pool = attention_dims(C, variant)
    sizes = st.sampled_from([2, 4, 6]) if pool else st.integers(1, 6)
    B, H, W = draw(st.integers(1, 2)), draw(sizes), draw(sizes)
    x_scale = draw(st.floats(0.1, 2.0))
    w_scale = draw(st.floats(0.1, 1.0))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    params = {
        "x": x_scale * rng.normal(size=(B, C, H, W)),
        "W_f": w_scale * rng.normal(size=(c_qk, C)),
        "W_g": w_scale * rng.normal(size=(c_qk, C)),
        "W_h": w_scale * rng.normal(size=(c_v, C)),
        "W_v": w_scale * rng.normal(size=(C, c_v)),
        "gamma": draw(st.floats(-2.0, 2.0)),
    }
    return params, pool, rng


def loss_fn(dy, pool):
    """L = <dy, y>: a scalar loss whose gradient with respect to y is dy."""
    return lambda **p: float(np.sum(dy * self_attention(**p, pool=pool)[0]))


@given(blocks())
def test_backward_matches_finite_differences_along_a_random_direction(block):
    params, pool, rng = block
    dy = rng.normal(size=params["x"].shape)
    grads = self_attention_backward(dy, **params, pool=pool)
    loss = loss_fn(dy, pool)
    # rounding error of the difference quotient: about 1e-16 sum_k |dy_k y_k| / eps, eps = 1e-6
    y, _ = self_attention(**params, pool=pool)
    rounding = 1e-9 * (1 + np.sum(np.abs(dy * y)))
    for name in PARAMS:  # one direction per parameter, so a failure names the parameter
        d = {name: rng.normal(size=np.shape(params[name]))}
        numeric = directional_derivative(loss, params, d)
        # plus a tolerance relative to |grad| |d|: <grad, d> itself may be small by cancellation
        tolerance = 1e-7 * np.linalg.norm(grads[name]) * np.linalg.norm(d[name]) + rounding
        assert inner(grads, d) == pytest.approx(numeric, rel=1e-6, abs=tolerance), name


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_backward_matches_finite_differences_elementwise(variant):
    rng = np.random.default_rng(0)
    c_qk, c_v, pool = attention_dims(8, variant)
    params = {
        "x": rng.normal(size=(1, 8, 2, 4)),
        "W_f": rng.normal(size=(c_qk, 8)),
        "W_g": rng.normal(size=(c_qk, 8)),
        "W_h": rng.normal(size=(c_v, 8)),
        "W_v": rng.normal(size=(8, c_v)),
        "gamma": 0.8,
    }
    dy = rng.normal(size=params["x"].shape)
    grads = self_attention_backward(dy, **params, pool=pool)
    for name in PARAMS:
        numeric = numerical_gradient(loss_fn(dy, pool), params, name)
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-6, atol=1e-8, err_msg=name)


def torch_self_attention(x, W_f, W_g, W_h, W_v, gamma, pool):
    """A second implementation from PyTorch building blocks (1x1 conv, max_pool2d, softmax)."""
    B, C, H, W = x.shape
    f = F.conv2d(x, W_f[:, :, None, None])
    g = F.conv2d(x, W_g[:, :, None, None])
    h = F.conv2d(x, W_h[:, :, None, None])
    if pool:
        f, h = F.max_pool2d(f, 2), F.max_pool2d(h, 2)
    f, g, h = f.flatten(2), g.flatten(2), h.flatten(2)  # (B, c, N) / (B, c, N_k)
    beta = torch.softmax(g.transpose(1, 2) @ f, dim=-1)  # (B, N, N_k)
    o = W_v @ (h @ beta.transpose(1, 2))  # (B, C, N)
    return (gamma * o).reshape(B, C, H, W) + x, beta


@given(blocks())
def test_values_and_gradients_match_pytorch_autograd(block):
    params, pool, rng = block
    dy = rng.normal(size=params["x"].shape)
    y, beta = self_attention(**params, pool=pool)
    grads = self_attention_backward(dy, **params, pool=pool)

    leaves = {k: torch.tensor(np.asarray(v, dtype=np.float64), requires_grad=True)
              for k, v in params.items()}  # fmt: skip
    y_t, beta_t = torch_self_attention(**leaves, pool=pool)
    y_t.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(y, y_t.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(beta, beta_t.detach().numpy(), rtol=1e-10, atol=1e-12)
    for name in PARAMS:
        np.testing.assert_allclose(
            grads[name], leaves[name].grad.numpy(), rtol=1e-9, atol=1e-10, err_msg=name
        )


@given(blocks())
def test_attention_rows_are_probability_distributions(block):
    params, pool, _ = block
    _, beta = self_attention(**params, pool=pool)
    B, _, H, W = params["x"].shape
    N_k = H * W // 4 if pool else H * W
    assert beta.shape == (B, H * W, N_k)
    assert np.all(beta >= 0)
    np.testing.assert_allclose(beta.sum(axis=-1), 1.0, rtol=0, atol=1e-12)


@given(blocks(variants=("paper",)), st.randoms(use_true_random=False))
def test_paper_variant_is_permutation_equivariant(block, random):
    """Without pooling, attention ignores where positions are: permuting them permutes y, beta."""
    params, _, _ = block
    x = params["x"]
    B, C, H, W = x.shape
    perm = list(range(H * W))
    random.shuffle(perm)
    x_perm = x.reshape(B, C, H * W)[:, :, perm].reshape(B, C, H, W)

    y, beta = self_attention(**params)
    y_perm, beta_perm = self_attention(**{**params, "x": x_perm})
    np.testing.assert_allclose(y_perm.reshape(B, C, -1), y.reshape(B, C, -1)[:, :, perm],
                               rtol=1e-12, atol=1e-12)  # fmt: skip
    np.testing.assert_allclose(beta_perm, beta[:, perm][:, :, perm], rtol=1e-12, atol=1e-12)


@given(blocks())
def test_gamma_zero_is_the_identity(block):
    params, pool, _ = block
    y, _ = self_attention(**{**params, "gamma": 0.0}, pool=pool)
    assert np.array_equal(y, params["x"])


@given(blocks())
def test_large_scores_give_finite_attention(block):
    """Scores of order 1e6: a softmax without the max subtraction would overflow exp()."""
    params, pool, _ = block
    params = {**params, "x": 1e3 * params["x"]}
    y, beta = self_attention(**params, pool=pool)  # pyproject turns RuntimeWarnings into errors
    assert np.all(np.isfinite(beta)) and np.all(np.isfinite(y))
    np.testing.assert_allclose(beta.sum(axis=-1), 1.0, rtol=0, atol=1e-12)


def test_max_pool_routes_gradient_to_the_first_maximum_like_pytorch():
    """Exact ties (small integers): both pick the first maximum of each window, read row-major."""
    rng = np.random.default_rng(1)
    z = rng.integers(0, 3, size=(2, 3, 4, 6)).astype(np.float64)  # many tied windows
    d_pooled = rng.normal(size=(2, 3, 2, 3))
    pooled, argmax = max_pool_2x2(z)
    dz = max_pool_2x2_backward(d_pooled, argmax)

    z_t = torch.tensor(z, requires_grad=True)
    pooled_t = F.max_pool2d(z_t, 2)
    pooled_t.backward(torch.from_numpy(d_pooled))
    np.testing.assert_array_equal(pooled, pooled_t.detach().numpy())
    np.testing.assert_array_equal(dz, z_t.grad.numpy())


def test_attention_dims_of_both_variants():
    assert attention_dims(64, "paper") == (8, 8, False)
    assert attention_dims(64, "official") == (8, 32, True)


def _valid_inputs():
    rng = np.random.default_rng(0)
    return {
        "x": rng.normal(size=(1, 8, 4, 4)),
        "W_f": rng.normal(size=(1, 8)),
        "W_g": rng.normal(size=(1, 8)),
        "W_h": rng.normal(size=(4, 8)),
        "W_v": rng.normal(size=(8, 4)),
        "gamma": 0.5,
    }


def _with_nan(a):
    a = np.array(a, dtype=np.float64)
    a.flat[0] = np.nan
    return a


BAD_INPUTS = {
    "x of rank 3": ({"x": np.ones((8, 4, 4))}, False, "x must have 4 dimensions"),
    "W_f for other C": ({"W_f": np.ones((1, 16))}, False, "W_f has shape"),
    "W_g of other c_qk": ({"W_g": np.ones((2, 8))}, False, "W_g has shape"),
    "W_h for other C": ({"W_h": np.ones((4, 6))}, False, "W_h has shape"),
    "W_v transposed": ({"W_v": np.ones((4, 8))}, False, "W_v has shape"),
    "W_v of rank 1": ({"W_v": np.ones(8)}, False, "W_v must have 2 dimensions"),
    "gamma a vector": ({"gamma": np.ones(2)}, False, "gamma must be a scalar"),
    "gamma NaN": ({"gamma": np.nan}, False, "gamma must be finite"),
    "x with NaN": ({"x": _with_nan(np.ones((1, 8, 4, 4)))}, False, "x contains NaN"),
    "W_h infinite": ({"W_h": np.full((4, 8), np.inf)}, False, "W_h contains NaN or infinite"),
    "odd H with pooling": ({"x": np.ones((1, 8, 3, 4))}, True, "even height and width"),
    "odd W with pooling": ({"x": np.ones((1, 8, 4, 5))}, True, "even height and width"),
    "empty x": ({"x": np.ones((1, 8, 0, 4))}, False, "x is empty"),
}


@pytest.mark.parametrize("change, pool, message", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_raises_a_clear_error(change, pool, message):
    inputs = {**_valid_inputs(), **change}
    with pytest.raises(ValueError, match=message):
        self_attention(**inputs, pool=pool)
    with pytest.raises(ValueError, match=message):
        self_attention_backward(np.ones(np.shape(inputs["x"])), **inputs, pool=pool)


@pytest.mark.parametrize(
    "dy, message",
    [
        (np.ones((1, 8, 4, 2)), "dy has shape"),
        (_with_nan(np.ones((1, 8, 4, 4))), "dy contains NaN"),
    ],
    ids=["dy of wrong shape", "dy with NaN"],
)
def test_bad_output_gradient_raises_a_clear_error(dy, message):
    with pytest.raises(ValueError, match=message):
        self_attention_backward(dy, **_valid_inputs(), pool=True)


@pytest.mark.parametrize(
    "C, variant, message",
    [(12, "paper", "multiple of 8"), (4, "official", "multiple of 8"), (8.0, "paper", "multiple"),
     (16, "transformer", "variant must be one of")],
)  # fmt: skip
def test_attention_dims_rejects_bad_channels_and_variants(C, variant, message):
    with pytest.raises(ValueError, match=message):
        attention_dims(C, variant)
