"""accelerated.ops hinge losses (eq. 4) against reference.hinge: values and gradients."""

import numpy as np
import pytest
import torch
from equivalence import DEVICE_DTYPES, assert_close, rounded
from hypothesis import given
from hypothesis import strategies as st

from accelerated import ops
from reference import hinge as ref

# Keyed by (device, dtype). Means of clipped logits: float64 agrees to summation order, float32
# to a few units of 6e-8 relative to the sum of |terms|; the gradients (+-1/B or 0) are exact
# wherever the hinge conditions agree, which rounding the logits first guarantees.
LOSS_TOL = {
    ("cpu", torch.float64): (1e-12, 1e-14),
    ("cpu", torch.float32): (1e-6, 1e-6),
    ("cuda", torch.float32): (1e-6, 1e-6),
    ("cuda", torch.bfloat16): 2e-2,
}
GRAD_TOL = {key: (1e-6, 0.0) for key in LOSS_TOL} | {("cuda", torch.bfloat16): 1e-2}

# Logits drawn from a range straddling both hinges, with the hinge points themselves mixed in.
# width=32: no value is subnormal *in float32* (a float64 of 5.6e-42 is normal, but rounds to a
# float32 subnormal, where a mean loses 2e-4 of relative precision; Hypothesis found it).
logits = st.lists(
    st.one_of(st.floats(-3, 3, allow_subnormal=False, width=32),
              st.sampled_from([-1.0, 1.0, 0.0])),
    min_size=1,
    max_size=40,
).map(np.array)


def as_torch(a, device, dtype):
    return torch.tensor(a, dtype=dtype, device=device, requires_grad=True)


@pytest.mark.parametrize(("device", "dtype"), DEVICE_DTYPES)
@given(d_real=logits, d_fake=logits)
def test_discriminator_loss_and_gradients_match_reference(device, dtype, d_real, d_fake):
    d_real, d_fake = rounded(d_real, dtype), rounded(d_fake, dtype)
    real, fake = as_torch(d_real, device, dtype), as_torch(d_fake, device, dtype)
    loss = ops.hinge_loss_discriminator(real, fake)
    assert loss.shape == ()
    # rounding errors of a mean scale with the mean of |terms|
    scale = float(np.abs(1 - d_real).mean() + np.abs(1 + d_fake).mean())
    assert_close(loss, ref.hinge_loss_discriminator(d_real, d_fake), LOSS_TOL[device, dtype], scale)
    loss.backward()
    grad_real, grad_fake = ref.hinge_loss_discriminator_backward(d_real, d_fake)
    assert_close(real.grad, grad_real, GRAD_TOL[device, dtype])
    assert_close(fake.grad, grad_fake, GRAD_TOL[device, dtype])


@pytest.mark.parametrize(("device", "dtype"), DEVICE_DTYPES)
@given(d_fake=logits)
def test_generator_loss_and_gradient_match_reference(device, dtype, d_fake):
    d_fake = rounded(d_fake, dtype)
    fake = as_torch(d_fake, device, dtype)
    loss = ops.hinge_loss_generator(fake)
    assert loss.shape == ()
    scale = float(np.abs(d_fake).mean())
    assert_close(loss, ref.hinge_loss_generator(d_fake), LOSS_TOL[device, dtype], scale)
    loss.backward()
    assert_close(fake.grad, ref.hinge_loss_generator_backward(d_fake), GRAD_TOL[device, dtype])


def test_no_gradient_beyond_the_margin():
    """Real logits above +1 and fake ones below -1 are left alone."""
    real = torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64, requires_grad=True)
    fake = torch.tensor([-2.0, -1.0, -0.5], dtype=torch.float64, requires_grad=True)
    ops.hinge_loss_discriminator(real, fake).backward()
    assert real.grad.tolist() == [0.0, 0.0, -1 / 3]
    assert fake.grad.tolist() == [0.0, 0.0, 1 / 3]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((torch.zeros(4, 1), torch.zeros(4)), "d_real must have 1 dimension"),
        ((torch.zeros(4), torch.zeros(0)), "d_fake is empty"),
    ],
)
def test_bad_logits_raise_one_clear_error(args, message):
    with pytest.raises(ValueError, match=message):
        ops.hinge_loss_discriminator(*args)
    with pytest.raises(ValueError, match=message.replace("d_real", "d_fake")):
        ops.hinge_loss_generator(args[0] if "d_real" in message else args[1])
