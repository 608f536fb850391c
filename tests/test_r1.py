"""The R1 penalty (`accelerated.ops.r1`) and its place in D's step (`optim.r1_gamma`)."""

import numpy as np
import pytest
import torch

from accelerated import config as C
from accelerated.bench.trainer import config, synthetic_gan, synthetic_step
from accelerated.ops import r1_penalty
from accelerated.training import gan_step
from accelerated.training.gan_step import StepLosses

CPU = torch.device("cpu")


@pytest.mark.parametrize("seed", range(3))
def test_r1_of_a_linear_critic_is_its_squared_weight_norm(seed):
    # D(x) = <w, x>: its gradient is w at every x, so E||grad||^2 = ||w||^2, and d/dw = 2 w
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(3, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    real = torch.randn(5, 3, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    penalty = r1_penalty((real * w).sum((1, 2, 3)), real)
    assert penalty.item() == pytest.approx(w.pow(2).sum().item(), rel=1e-12)
    (grad_w,) = torch.autograd.grad(penalty, w)
    np.testing.assert_allclose(grad_w.numpy(), 2 * w.detach().numpy(), rtol=1e-12)


def test_r1_of_a_quadratic_critic_averages_over_the_batch():
    # D(x) = ||x||^2 / 2: gradient x, so the penalty is the batch mean of ||x||^2
    real = torch.arange(2 * 3 * 2 * 2, dtype=torch.float64).reshape(2, 3, 2, 2).requires_grad_()
    penalty = r1_penalty(real.pow(2).sum((1, 2, 3)) / 2, real)
    assert penalty.item() == pytest.approx(real.detach().pow(2).sum((1, 2, 3)).mean().item())


def test_r1_asks_for_real_images_that_require_grad():
    real = torch.zeros(2, 3, 4, 4)
    with pytest.raises(ValueError, match="requires_grad"):
        r1_penalty(real.sum((1, 2, 3)), real)


def tiny_gan(overrides: dict) -> gan_step.GANStep:
    """The tiny preset's `GANStep` with the run's initial weights."""
    return synthetic_gan(config("tiny", overrides={"optim.ema": False, **overrides}), CPU)


def d_gradients(overrides: dict, step: int = 0,
                gan=None) -> tuple[dict[str, float], list[torch.Tensor]]:
    """Iteration number `step` of `gan` (else `tiny_gan(overrides)`); its losses and D's
    gradients (what the D step applied; the G step leaves D's .grad alone)."""
    gan = gan or tiny_gan(overrides)
    losses, d_oks, g_ok = synthetic_step(gan, first_step=step)()
    assert d_oks == [True] and g_ok
    return dict(losses), [p.grad.clone() for p in gan.D.parameters()]


def test_d_step_adds_half_gamma_times_the_penalty_gradient(monkeypatch):
    gamma, recorded = 3.0, []
    gan = tiny_gan({"optim.r1_gamma": gamma})
    params = list(gan.D.parameters())

    def recording(d_real, real):  # the penalty's own gradient in D's weights, as computed
        r1 = r1_penalty(d_real, real)
        grads = torch.autograd.grad(r1, params, retain_graph=True, allow_unused=True)
        recorded.extend(torch.zeros_like(p) if g is None else g
                        for p, g in zip(params, grads, strict=True))
        return r1

    monkeypatch.setattr(gan_step, "r1_penalty", recording)
    plain_losses, plain = d_gradients({})
    losses, with_r1 = d_gradients({}, gan=gan)
    assert "r1" not in plain_losses and losses["r1"] > 0
    assert losses["loss_d"] == pytest.approx(plain_losses["loss_d"], rel=1e-6)  # hinge alone
    assert len(recorded) == len(plain)
    assert sum(g.abs().sum() for g in recorded) > 0
    for p0, p1, g in zip(plain, with_r1, recorded, strict=True):
        torch.testing.assert_close(p1 - p0, gamma / 2 * g, rtol=1e-4, atol=1e-6)


def test_r1_runs_under_the_fast_path_levers_with_two_d_steps():
    # bf16 autocast, channels-last and fused Adam on a CPU, and the penalty on both D steps
    cfg = config("tiny", overrides={"optim.r1_gamma": 1.0, "optim.d_steps": 2})
    gan = synthetic_gan(cfg, CPU, levers_anywhere=True)
    assert gan.bf16 and gan.memory_format == torch.channels_last
    losses, d_oks, g_ok = synthetic_step(gan)()
    assert d_oks == [True, True] and g_ok
    assert 0 < dict(losses)["r1"] < float("inf")


def test_lazy_r1_penalises_every_kth_iteration_k_times_as_much():
    _, plain = d_gradients({})
    _, every = d_gradients({"optim.r1_gamma": 1.0})
    for step, weight in ((0, 3), (1, 0), (2, 0), (3, 3), (6, 3)):
        _, lazy = d_gradients({"optim.r1_gamma": 1.0, "optim.r1_every": 3}, step)
        for p0, p1, p3 in zip(plain, every, lazy, strict=True):
            torch.testing.assert_close(p3 - p0, weight * (p1 - p0), rtol=1e-4, atol=1e-6)


def test_lazy_r1_logs_the_latest_penalty_between_its_iterations():
    gan = synthetic_gan(config("tiny", overrides={"optim.r1_gamma": 1.0, "optim.r1_every": 2}), CPU)
    step = synthetic_step(gan, first_step=1)
    assert "r1" not in dict(step()[0])  # iteration 1: none computed yet
    computed = dict(step()[0])["r1"]  # iteration 2 computes it
    assert dict(step()[0])["r1"] == computed  # iteration 3 shows iteration 2's


def test_r1_takes_the_readable_attention_route_where_the_kernel_is_chosen(stand_in_kernels):
    # the kernel's backward is not differentiable again: R1's pass must not run through it
    gamma = {"optim.r1_gamma": 1.0}
    readable_losses, readable = d_gradients({**gamma, "run.attention_route": "readable"})
    losses, kernel = d_gradients({**gamma, "run.attention_route": "kernel",
                                  "run.backend": "cupy"})
    assert losses["r1"] == pytest.approx(readable_losses["r1"], rel=1e-5)
    for a, b in zip(readable, kernel, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"optim.r1_gamma": -1.0}, "r1_gamma must be at least 0"),
    ({"optim.r1_every": 0}, "r1_every must be at least 1"),
    ({"optim.r1_gamma": float("inf")}, "r1_gamma must be at least 0 and finite"),
    ({"optim.r1_gamma": 1.0, "run.compile": True}, "torch.compile does not give"),
])
def test_impossible_r1_settings_are_refused_with_the_fix(overrides, message):
    with pytest.raises(C.ConfigError, match=message):
        C.validate(C.build("tiny", overrides=overrides))


def test_losses_list_r1_only_when_it_was_computed():
    assert list(StepLosses(torch.tensor([1.0, 2.0, 3.0, 4.0]))) == [
        "loss_d", "loss_g", "d_real", "d_fake"]
    assert dict(StepLosses(torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])))["r1"] == 5.0
