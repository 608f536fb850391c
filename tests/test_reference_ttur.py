"""reference.ttur: the Adam step of the two time-scale update rule, against torch.optim.Adam."""

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from reference.ttur import (
    ADAM_BETAS_OFFICIAL,
    ADAM_BETAS_PAPER,
    TTUR_LR_D,
    TTUR_LR_G,
    adam_step,
)


@given(
    st.sampled_from([(3,), (2, 4), (4, 2, 3, 3)]),
    st.sampled_from([TTUR_LR_D, TTUR_LR_G]),
    st.sampled_from([ADAM_BETAS_OFFICIAL, ADAM_BETAS_PAPER, (0.5, 0.99)]),
    st.floats(1e-3, 1e3),
    st.integers(0, 2**32 - 1),
)
@example((4, 2, 3, 3), TTUR_LR_D, (0.5, 0.99), 1.0, 3729)  # an m of 9e-5 off by 1.4e-17
def test_matches_torch_adam_for_a_few_steps(shape, lr, betas, grad_scale, seed):
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=shape)
    m, v = np.zeros(shape), np.zeros(shape)
    theta_t = torch.tensor(theta, requires_grad=True)
    optimizer = torch.optim.Adam([theta_t], lr=lr, betas=betas, eps=1e-8)
    for t in range(1, 6):
        grad = grad_scale * rng.normal(size=shape)
        theta, m, v = adam_step(theta, grad, m, v, t, lr, *betas)
        theta_t.grad = torch.tensor(grad)
        optimizer.step()
        np.testing.assert_allclose(theta, theta_t.detach().numpy(), rtol=1e-13, atol=1e-15)
    state = optimizer.state[theta_t]
    # m sums gradients of both signs: where it nears 0 it keeps the rounding error of terms of
    # size grad_scale, so its tolerance is absolute at that scale (a relative one fails there)
    np.testing.assert_allclose(m, state["exp_avg"].numpy(), rtol=1e-13, atol=1e-15 * grad_scale)
    np.testing.assert_allclose(v, state["exp_avg_sq"].numpy(), rtol=1e-13)


@given(st.floats(1e-3, 1e3), st.integers(0, 2**32 - 1))
def test_first_step_moves_each_coordinate_by_lr_against_the_gradient_sign(grad_scale, seed):
    """With bias correction, m_hat / sqrt(v_hat) = g / |g| at t = 1: a step of about lr per
    coordinate whatever the gradient's scale (exactly lr |g| / (|g| + eps))."""
    rng = np.random.default_rng(seed)
    theta, grad = rng.normal(size=5), grad_scale * rng.normal(size=5)
    new, _, _ = adam_step(theta, grad, np.zeros(5), np.zeros(5), 1, TTUR_LR_D, *ADAM_BETAS_PAPER)
    expected = -TTUR_LR_D * np.sign(grad) * np.abs(grad) / (np.abs(grad) + 1e-8)
    np.testing.assert_allclose(new - theta, expected, rtol=1e-9)


GOOD = {"theta": np.zeros(3), "grad": np.ones(3), "m": np.zeros(3), "v": np.zeros(3), "t": 1,
        "lr": TTUR_LR_G, "beta1": 0.0, "beta2": 0.999}  # fmt: skip
BAD = {
    "grad of other shape": ({"grad": np.ones(4)}, "grad has shape"),
    "v of other shape": ({"v": np.zeros((3, 1))}, "v has shape"),
    "NaN gradient": ({"grad": np.array([1.0, np.nan, 0.0])}, "grad contains NaN"),
    "step 0": ({"t": 0}, "t must be an integer >= 1"),
    "negative lr": ({"lr": -1e-4}, "lr must be positive"),
    "beta1 = 1": ({"beta1": 1.0}, "beta1 must be in"),
    "negative beta2": ({"beta2": -0.1}, "beta2 must be in"),
    "eps 0": ({"eps": 0.0}, "eps must be positive"),
}


@pytest.mark.parametrize("change, message", BAD.values(), ids=BAD.keys())
def test_bad_input_raises_a_clear_error(change, message):
    with pytest.raises(ValueError, match=message):
        adam_step(**{**GOOD, **change})
