"""reference.hinge: eq. (4) of SAGAN and its gradients, against the definition and PyTorch."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _finite_differences import directional_derivative, inner
from hypothesis import given
from hypothesis import strategies as st

from reference.hinge import (
    hinge_loss_discriminator,
    hinge_loss_discriminator_backward,
    hinge_loss_generator,
    hinge_loss_generator_backward,
)

logits = st.lists(st.floats(-5.0, 5.0), min_size=1, max_size=8).map(np.array)
# logits on the hinges (+1 for real, -1 for fake), where the loss has a kink
kinky_logits = st.lists(st.sampled_from([-2.0, -1.0, 0.0, 1.0, 2.0]), min_size=1, max_size=8).map(
    np.array
)


@given(st.lists(st.floats(1.0, 1e6), min_size=1, max_size=8).map(np.array),
       st.lists(st.floats(-1e6, -1.0), min_size=1, max_size=8).map(np.array))  # fmt: skip
def test_zero_loss_and_gradient_when_margins_are_met(d_real, d_fake):
    assert hinge_loss_discriminator(d_real, d_fake) == 0.0
    grad_real, grad_fake = hinge_loss_discriminator_backward(d_real, d_fake)
    assert not np.any(grad_real) and not np.any(grad_fake)


@given(logits, logits)
def test_losses_match_their_definition(d_real, d_fake):
    L_D = sum(max(0.0, 1.0 - d) for d in d_real) / len(d_real) + sum(
        max(0.0, 1.0 + d) for d in d_fake
    ) / len(d_fake)
    assert hinge_loss_discriminator(d_real, d_fake) == pytest.approx(L_D, rel=1e-12, abs=1e-12)
    assert hinge_loss_generator(d_fake) == pytest.approx(-sum(d_fake) / len(d_fake), abs=1e-12)


@given(st.one_of(logits, kinky_logits), st.one_of(logits, kinky_logits))
def test_values_and_gradients_match_pytorch_also_on_the_hinge(d_real, d_fake):
    """On the kink torch's relu has derivative 0, and so has the reference."""
    real = torch.tensor(d_real, requires_grad=True)
    fake = torch.tensor(d_fake, requires_grad=True)
    L_D = F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    L_D.backward()
    assert hinge_loss_discriminator(d_real, d_fake) == pytest.approx(L_D.item(), abs=1e-12)
    grad_real, grad_fake = hinge_loss_discriminator_backward(d_real, d_fake)
    np.testing.assert_array_equal(grad_real, real.grad.numpy())
    np.testing.assert_array_equal(grad_fake, fake.grad.numpy())

    fake.grad = None
    L_G = -fake.mean()
    L_G.backward()
    assert hinge_loss_generator(d_fake) == pytest.approx(L_G.item(), abs=1e-12)
    np.testing.assert_allclose(hinge_loss_generator_backward(d_fake), fake.grad.numpy(), rtol=1e-15)


@given(logits, logits, st.integers(0, 2**32 - 1))
def test_gradients_match_finite_differences_away_from_the_hinge(d_real, d_fake, seed):
    # keep every logit at least 1e-3 away from its kink, where the loss is differentiable
    d_real = np.where(np.abs(d_real - 1) < 1e-3, d_real + 1e-2, d_real)
    d_fake = np.where(np.abs(d_fake + 1) < 1e-3, d_fake + 1e-2, d_fake)
    rng = np.random.default_rng(seed)
    d = {"d_real": rng.normal(size=d_real.shape), "d_fake": rng.normal(size=d_fake.shape)}
    params = {"d_real": d_real, "d_fake": d_fake}

    grad_real, grad_fake = hinge_loss_discriminator_backward(d_real, d_fake)
    numeric = directional_derivative(hinge_loss_discriminator, params, d, eps=1e-5)
    assert inner({"d_real": grad_real, "d_fake": grad_fake}, d) == pytest.approx(numeric, abs=1e-9)

    def L_G(d_fake):
        return hinge_loss_generator(d_fake)

    numeric = directional_derivative(L_G, {"d_fake": d_fake}, {"d_fake": d["d_fake"]}, eps=1e-5)
    grad = {"d_fake": hinge_loss_generator_backward(d_fake)}
    assert inner(grad, {"d_fake": d["d_fake"]}) == pytest.approx(numeric, abs=1e-9)


BAD = {
    "2-D logits": (np.ones((2, 1)), "must have 1 dimensions"),
    "empty logits": (np.ones(0), "is empty"),
    "NaN logit": (np.array([0.0, np.nan]), "contains NaN"),
    "infinite logit": (np.array([np.inf]), "contains NaN or infinite"),
}


@pytest.mark.parametrize("bad, message", BAD.values(), ids=BAD.keys())
def test_bad_input_raises_a_clear_error(bad, message):
    good = np.zeros(2)
    for call in (
        lambda: hinge_loss_discriminator(bad, good),
        lambda: hinge_loss_discriminator(good, bad),
        lambda: hinge_loss_discriminator_backward(bad, good),
        lambda: hinge_loss_discriminator_backward(good, bad),
        lambda: hinge_loss_generator(bad),
        lambda: hinge_loss_generator_backward(bad),
    ):
        with pytest.raises(ValueError, match=message):
            call()
