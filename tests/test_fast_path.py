"""The fast path's pieces on a CPU: its twin (one `GANStep` iteration with bf16 autocast,
channels-last, `torch.compile`, fused Adam and the kernel route through the CPU stand-ins of
tests/kernel_stand_ins.py) against the plain iteration, and the dtypes and syncs of the step."""

import functools

import pytest
import torch
from torch.nn.utils import parametrize

from accelerated.bench.trainer import config, synthetic_gan, synthetic_step
from accelerated.kernels import attention
from accelerated.layers.batchnorm import ConditionalBatchNorm2d
from accelerated.layers.projection import ProjectionHead
from accelerated.layers.spectral_norm import sn_conv2d
from accelerated.training.gan_step import GANStep, StepLosses

CPU = torch.device("cpu")


@pytest.mark.slow  # compiles G and D with Inductor
def test_fast_path_twin_matches_the_plain_iteration(stand_in_kernels):
    runs = {}
    for name, fast in (("plain", False), ("fast", True)):
        cfg = config(
            "tiny", overrides={"run.bf16": fast, "run.channels_last": fast, "run.compile": fast,
                               "run.backend": "cupy" if fast else "torch"}
        )
        trainer = synthetic_gan(cfg, CPU, levers_anywhere=fast)
        calls = []

        def counted(q, k, v, calls=calls):
            calls.append(q.dtype)
            return attention.forward_in_torch(q, k, v)

        attention.attention_forward.register_kernel("cpu", counted)
        torch._dynamo.reset()
        try:
            losses, d_oks, g_ok = synthetic_step(trainer)()
        finally:
            attention.attention_forward.register_kernel("cpu", attention.forward_in_torch)
        runs[name] = (trainer, dict(losses), calls, (d_oks, g_ok))
    (plain, plain_losses, plain_calls, plain_oks), (fast, fast_losses, fast_calls, fast_oks) = (
        runs.values())
    assert plain_calls == [] and set(fast_calls) == {torch.bfloat16}  # the kernel route, in bf16
    assert fast.opt_D.defaults["fused"] and fast.bf16 and fast.memory_format == torch.channels_last
    assert fast_oks == plain_oks == ([True], True)  # no step skipped
    for name, value in plain_losses.items():
        assert fast_losses[name] == pytest.approx(value, abs=0.05), name
    # Adam's first update moves each weight by about lr * sign(gradient): bf16 may flip the sign
    # of a tiny gradient, not of most. A flipped sign costs 2 lr, so a mean of `share` lr is about
    # share / 2 of the weights flipped; a wrong layout or dtype (unrelated updates) gives about lr.
    # G's gradients come through D's bf16 backward as well: more of them are tiny (measured on
    # this CPU: about 19% flipped in G, under 12% in D).
    for net, lr, share in (("G", plain.cfg.optim.lr_g, 0.5), ("D", plain.cfg.optim.lr_d, 0.25)):
        diffs = torch.cat(
            [
                (a.detach() - b.detach()).abs().flatten()
                for a, b in zip(
                    getattr(plain, net).parameters(), getattr(fast, net).parameters(), strict=True
                )
            ]
        )
        assert diffs.max() <= 2.05 * lr and diffs.mean() <= share * lr, net


def test_conditional_bn_keeps_the_activations_dtype():
    """Bug: the float32 class gains and biases promoted bf16 activations (and everything after
    them) to float32 under autocast."""
    layer = ConditionalBatchNorm2d(4, num_classes=3)
    x, y = torch.randn(2, 4, 3, 3, dtype=torch.bfloat16), torch.tensor([0, 2])
    layer.bn.to(torch.bfloat16)
    assert layer(x, y).dtype == torch.bfloat16
    assert layer.float()(x.float(), y).dtype == torch.float32


def test_projection_head_runs_in_float32_under_autocast():
    """Bug: D's logits came out of a bf16 linear layer, while the losses are said float32."""
    head = ProjectionHead(8, num_classes=3, sn=False)
    h, y = torch.randn(5, 8).to(torch.bfloat16), torch.tensor([0, 1, 2, 0, 1])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = head(h, y)
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits, head(h.float(), y))


def test_fused_adam_skips_a_non_finite_step_on_the_device():
    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([w], lr=0.1, fused=True)
    w.grad = torch.tensor([1.0, float("nan"), 1.0])
    GANStep.step_if(opt, torch.isfinite(w.grad).all())
    assert torch.equal(w.detach(), torch.ones(3))
    w.grad = torch.ones(3)
    GANStep.step_if(opt, torch.isfinite(w.grad).all())
    assert torch.all(w.detach() < 1) and opt.state[w]["step"].item() == 1  # the skip not counted


def test_losses_are_read_from_the_device_only_when_looked_at(monkeypatch):
    reads = []
    values = torch.tensor([1.0, 2.0, 3.0, 4.0])
    losses = StepLosses(values)
    monkeypatch.setattr(torch.Tensor, "tolist", lambda t: reads.append(1) or t.numpy().tolist())
    assert reads == []
    assert {**losses} == {"loss_d": 1.0, "loss_g": 2.0, "d_real": 3.0, "d_fake": 4.0}
    assert losses["loss_g"] == 2.0 and len(reads) == 1


def test_spectral_norm_compiles_into_the_bf16_forward_in_float32(monkeypatch):
    """SN used to be computed eagerly before each bf16 forward (about 1,000 small launches per
    iteration at 128x128); now its power iteration is part of the compiled graph, in float32."""
    graphs = []

    def recording(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend=recording))
    cfg = config("tiny", overrides={"run.bf16": True, "run.compile": True})
    gan = synthetic_gan(cfg, CPU, levers_anywhere=True)
    torch._dynamo.reset()
    synthetic_step(gan)()
    torch._dynamo.reset()
    nodes = [n for gm in graphs for n in gm.graph.nodes if n.op == "call_function"]
    products = [n for n in nodes if n.target in (torch.mv, torch.vdot)]
    sn_layers = sum(parametrize.is_parametrized(m) for m in gan.D.modules())
    assert len([n for n in products if n.target is torch.vdot]) >= sn_layers  # each of D's SNs
    assert {n.meta["example_value"].dtype for n in products} == {torch.float32}


@pytest.mark.gpu
def test_spectral_norm_is_float32_under_cuda_autocast():
    conv = sn_conv2d(64, 64, 3).cuda().eval()
    plain = conv.weight.detach().clone()
    with torch.autocast("cuda", dtype=torch.bfloat16):  # autocast lowers torch.mv on CUDA
        assert torch.equal(conv.weight, plain)
