"""accelerated.ops.power_iteration / spectral_norm against reference.spectral_norm."""

import numpy as np
import pytest
import torch
from equivalence import DEVICE_DTYPES, assert_close, rounded
from hypothesis import given
from hypothesis import strategies as st

from accelerated import ops
from reference import spectral_norm as ref

# Keyed by (device, dtype). A few normalised matrix-vector products: float64 agrees to rounding
# (~1e-15); float32 to a few units of 6e-8, amplified where W^T u or W v nearly cancel: the worst
# of 2000 CPU examples sat ~10x inside these bounds; bfloat16 as a whole-tensor relative error
# (see equivalence.assert_close).
FORWARD_TOL = {
    ("cpu", torch.float64): (1e-10, 1e-12),
    ("cpu", torch.float32): (2e-4, 2e-5),
    ("cuda", torch.float32): (2e-4, 2e-5),
    ("cuda", torch.bfloat16): 8e-2,
}
GRAD_TOL = FORWARD_TOL  # dW = dW_sn / sigma - <dW_sn, W> / sigma^2 u v^T: the same few products


@st.composite
def sn_inputs(draw):
    """A weight of 2 to 4 dimensions (linear, conv), a start vector u, a number of steps."""
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=2, max_size=4)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    W = rng.normal(size=shape)
    u = rng.normal(size=shape[0])
    dW_sn = rng.normal(size=shape)
    return W, u, draw(st.integers(1, 4)), dW_sn


def as_torch(a, device, dtype, requires_grad=False):
    return torch.tensor(a, dtype=dtype, device=device, requires_grad=requires_grad)


@pytest.mark.parametrize(("device", "dtype"), DEVICE_DTYPES)
@given(case=sn_inputs())
def test_forward_matches_reference(device, dtype, case):
    W, u, n_steps = rounded(case[0], dtype), rounded(case[1], dtype), case[2]
    W_sn, sigma, u_k, v_k = ops.spectral_norm(
        as_torch(W, device, dtype), as_torch(u, device, dtype), n_steps
    )
    W_sn_ref, sigma_ref, u_ref, v_ref = ref.spectral_norm(W, u, n_steps)
    tol = FORWARD_TOL[device, dtype]
    assert_close(sigma, sigma_ref, tol)
    assert_close(u_k, u_ref, tol)
    assert_close(v_k, v_ref, tol)
    assert_close(W_sn, W_sn_ref, tol)


@pytest.mark.parametrize(("device", "dtype"), DEVICE_DTYPES)
@given(case=sn_inputs())
def test_gradient_matches_reference_backward(device, dtype, case):
    """Autograd reaches W only through sigma = u^T W v with u, v constant, as the reference."""
    W, u, dW_sn = (rounded(a, dtype) for a in (case[0], case[1], case[3]))
    W_t = as_torch(W, device, dtype, requires_grad=True)
    W_sn, _, u_k, v_k = ops.spectral_norm(W_t, as_torch(u, device, dtype), case[2])
    assert not u_k.requires_grad and not v_k.requires_grad
    W_sn.backward(as_torch(dW_sn, device, dtype))
    _, sigma_ref, u_ref, v_ref = ref.spectral_norm(W, u, case[2])
    expected = ref.spectral_norm_backward(dW_sn, W, u_ref, v_ref)
    # the two terms of dW can cancel (to 0 for a 1x1 W): errors scale with the first, dW_sn / sigma
    scale = float(np.abs(dW_sn).max() / abs(sigma_ref))
    assert_close(W_t.grad, expected, GRAD_TOL[device, dtype], scale=scale)


def test_many_steps_reach_the_largest_singular_value():
    generator = torch.Generator().manual_seed(0)
    W = torch.randn(6, 4, dtype=torch.float64, generator=generator)
    u0 = torch.randn(6, dtype=torch.float64, generator=generator)
    sigma, u, v = ops.power_iteration(W, u0, n_steps=500)
    torch.testing.assert_close(sigma, torch.linalg.matrix_norm(W, ord=2))
    torch.testing.assert_close(W @ v, sigma * u)  # u, v: the top singular pair


@pytest.mark.parametrize(
    ("W", "u", "n_steps", "message"),
    [
        (torch.randn(4, 3), torch.randn(3), 1, r"u must have shape \(4,\)"),
        (torch.randn(4, 3), torch.randn(4, 1), 1, r"u must have shape \(4,\)"),
        (torch.randn(4, 3), torch.randn(4), 0, "n_steps must be at least 1"),
        (torch.randn(0, 3), torch.randn(0), 1, "W is empty"),
        (torch.randn(4), torch.randn(4), 1, "W must have at least 2 dimensions"),
    ],
)
def test_bad_input_raises_one_clear_error(W, u, n_steps, message):
    with pytest.raises(ValueError, match=message):
        ops.spectral_norm(W, u, n_steps)
