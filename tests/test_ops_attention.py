"""accelerated.ops.self_attention against reference.attention: values and autograd gradients.

Inputs are drawn once as float64 NumPy arrays, rounded to the dtype under test, and the same
rounded numbers go to both sides, so a mismatch measures the op's arithmetic, not the inputs.
"""

import numpy as np
import pytest
import torch
from equivalence import DEVICE_DTYPES, assert_close, rounded
from hypothesis import given
from hypothesis import strategies as st

from accelerated import ops
from reference import attention as ref

# Keyed by (device, dtype). Float64 agrees with the reference to summation order (errors
# ~1e-15 relative); float32 has ~6e-8 unit roundoff, grown by four chained products, a softmax
# and (gradients) sums over all positions: measured CPU worst cases over 300 examples sit more
# than 5x inside these bounds. CUDA float32 gets 10x headroom for the fused attention kernel's
# other summation order. bfloat16 (8-bit mantissa) is compared as a whole-tensor relative error
# (see equivalence.assert_close); the CPU bfloat16 path measured 0.02 (forward) and 0.064
# (gradients, unpooled) at worst.
FORWARD_TOL = {
    ("cpu", torch.float64): (1e-11, 1e-12),
    ("cpu", torch.float32): (1e-5, 1e-6),
    ("cuda", torch.float32): (1e-4, 1e-5),
    ("cuda", torch.bfloat16): 5e-2,
}
GRAD_TOL = {
    ("cpu", torch.float64): (1e-10, 1e-11),
    # float32: where the softmax backward cancels, an entry can be off by 1e-4 of the tensor's
    # largest one (found by Hypothesis: 5.2e-7 on a gradient of at most 5e-3); a wrong formula
    # is off by O(1)
    ("cpu", torch.float32): (1e-4, 1e-4),
    ("cuda", torch.float32): (1e-3, 1e-4),
    ("cuda", torch.bfloat16): 1.5e-1,
}
NAMES = ("x", "W_f", "W_g", "W_h", "W_v")


@st.composite
def attention_inputs(draw):
    """Random shapes, variant and pooling; values from a seeded normal generator."""
    variant = draw(st.sampled_from(["paper", "official"]))
    C = draw(st.sampled_from([8, 16, 24]))
    pool = draw(st.booleans())
    B = draw(st.integers(1, 2))
    if pool:
        H, W = 2 * draw(st.integers(1, 3)), 2 * draw(st.integers(1, 3))
    else:
        H, W = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    c_qk, c_v, _ = ref.attention_dims(C, variant)
    arrays = {
        "x": rng.normal(size=(B, C, H, W)),
        "W_f": rng.normal(size=(c_qk, C)) / np.sqrt(C),
        "W_g": rng.normal(size=(c_qk, C)) / np.sqrt(C),
        "W_h": rng.normal(size=(c_v, C)) / np.sqrt(C),
        "W_v": rng.normal(size=(C, c_v)) / np.sqrt(c_v),
    }
    gamma = float(rng.choice([-1, 1]) * rng.uniform(0.3, 1.5))  # nonzero: o must matter
    dy = rng.normal(size=(B, C, H, W))
    return arrays, gamma, pool, dy


def prepare(case, device, dtype, requires_grad=False):
    """Round to `dtype`: (arrays, gamma, dy) for the reference, (tensors, kwargs) for the op."""
    arrays, gamma, pool, dy = case
    arrays = {k: rounded(arrays[k], dtype) for k in NAMES}
    gamma, dy = float(rounded(gamma, dtype)), rounded(dy, dtype)
    tensors = [
        torch.tensor(a, dtype=dtype, device=device, requires_grad=requires_grad)
        for a in (*arrays.values(), gamma)
    ]
    return (arrays, gamma, dy), (tensors, {"pool": pool})


@pytest.mark.parametrize(("device", "dtype"), DEVICE_DTYPES)
@given(case=attention_inputs())
def test_forward_matches_reference(device, dtype, case):
    (arrays, gamma, _), (tensors, kwargs) = prepare(case, device, dtype)
    y, beta = ops.self_attention(*tensors, **kwargs, return_attention=True)
    y_ref, beta_ref = ref.self_attention(*arrays.values(), gamma, **kwargs)
    assert_close(beta, beta_ref, FORWARD_TOL[device, dtype])
    assert_close(y, y_ref, FORWARD_TOL[device, dtype])
    # without return_attention (the fused path on CUDA) y is the same
    assert_close(ops.self_attention(*tensors, **kwargs), y_ref, FORWARD_TOL[device, dtype])


@pytest.mark.parametrize(("device", "dtype"), DEVICE_DTYPES)
@given(case=attention_inputs())
def test_gradients_match_reference_backward(device, dtype, case):
    """Autograd through the training path (no return_attention) vs the hand-written backward."""
    if dtype == torch.bfloat16:
        # 8-bit mantissas tie or swap near-equal maxima of a 2x2 window, and the max-pool's
        # gradient then goes to another element: compare bfloat16 gradients without pooling.
        case = (*case[:2], False, case[3])
    (arrays, gamma, dy), (tensors, kwargs) = prepare(case, device, dtype, requires_grad=True)
    y = ops.self_attention(*tensors, **kwargs)
    y.backward(torch.tensor(dy, dtype=dtype, device=device))
    grads = ref.self_attention_backward(dy, *arrays.values(), gamma, **kwargs)
    for name, tensor in zip(NAMES, tensors[:-1], strict=True):
        assert_close(tensor.grad, grads[name], GRAD_TOL[device, dtype])
    # dL/dgamma = sum(dy * o) can cancel: measure its error against sum |dy * o|
    y_ref, _ = ref.self_attention(*arrays.values(), gamma, **kwargs)
    terms = float(np.abs(dy * (y_ref - arrays["x"]) / gamma).sum())
    assert_close(tensors[-1].grad, grads["gamma"], GRAD_TOL[device, dtype], scale=terms)


def test_rows_of_beta_sum_to_one_over_keys():
    """Softmax over the keys: a (B, N, N_k) map whose rows sum to 1, N_k = N/4 when pooled."""
    x = torch.randn(2, 16, 4, 6, dtype=torch.float64)
    c_qk, c_v, pool = ops.attention_dims(16, "official")
    weights = [torch.randn(*s, dtype=torch.float64) for s in [(c_qk, 16)] * 2 + [(c_v, 16)]]
    _, beta = ops.self_attention(x, *weights, torch.randn(16, c_v, dtype=torch.float64), 1.0,
                                 pool=pool, return_attention=True)  # fmt: skip
    assert beta.shape == (2, 24, 6)
    torch.testing.assert_close(beta.sum(-1), torch.ones(2, 24, dtype=torch.float64))


def test_gamma_zero_is_identity():
    x = torch.randn(1, 8, 3, 3)
    weights = [torch.randn(1, 8), torch.randn(1, 8), torch.randn(1, 8), torch.randn(8, 1)]
    assert torch.equal(ops.self_attention(x, *weights, 0.0), x)


def _valid_args():
    x = torch.randn(1, 16, 4, 4)
    return [x, torch.randn(2, 16), torch.randn(2, 16), torch.randn(8, 16), torch.randn(16, 8), 1.0]


@pytest.mark.parametrize(
    ("index", "bad", "message"),
    [
        (0, torch.randn(16, 4, 4), "x must have 4 dimensions"),
        (1, torch.randn(2, 16, 1, 1), "W_f must have 2 dimensions"),
        (2, torch.randn(3, 16), "W_g has shape"),
        (3, torch.randn(8, 15), "W_h has shape"),
        (4, torch.randn(16, 7), "W_v has shape"),
        (5, torch.ones(2), "gamma must be a scalar"),
    ],
)
def test_bad_shapes_raise_one_clear_error(index, bad, message):
    args = _valid_args()
    args[index] = bad
    with pytest.raises(ValueError, match=message):
        ops.self_attention(*args)


def test_pooling_needs_even_size():
    args = _valid_args()
    args[0] = torch.randn(1, 16, 3, 4)
    with pytest.raises(ValueError, match="even height and width"):
        ops.self_attention(*args, pool=True)


def test_attention_dims_is_the_reference_table():
    assert ops.attention_dims(64, "paper") == (8, 8, False)
    assert ops.attention_dims(64, "official") == (8, 32, True)
    with pytest.raises(ValueError, match="multiple of 8"):
        ops.attention_dims(12, "official")
