"""Every attention route and backend choice, forced on a CPU: the readable path, SDPA and the
kernel route (the real custom ops and their autograd, with the PyTorch stand-ins of
tests/kernel_stand_ins.py as their CPU kernels), eager and under `torch.compile`, in the model's
layout (q, k, v as non-contiguous `(B, c, H, W) -> (B, HW, c)` views)."""

import warnings

import kernel_stand_ins as stand_ins
import pytest
import torch
import torch.nn.functional as F

from accelerated import backend, ops
from accelerated.kernels import attention
from accelerated.ops import attention as attention_op


def block(C=16, variant="official", seed=0, H=4, W=6, requires_grad=True):
    """x (2, C, H, W) and the four weights of an attention block, float32."""
    g = torch.Generator().manual_seed(seed)
    c_qk, c_v, pool = ops.attention_dims(C, variant)
    shapes = [(2, C, H, W), (c_qk, C), (c_qk, C), (c_v, C), (C, c_v)]
    # weights of unit gain (1/sqrt(fan-in)), so float32 rounding of the scores stays small
    scales = [1.0, C**-0.5, C**-0.5, C**-0.5, c_v**-0.5]
    tensors = [
        (scale * torch.randn(*shape, generator=g)).requires_grad_(requires_grad)
        for shape, scale in zip(shapes, scales, strict=True)
    ]
    return tensors, pool


def values_and_grads(fn, tensors, pool):
    x, *weights = tensors
    y = fn(x, *weights, torch.tensor(0.7), pool=pool)
    dy = torch.linspace(-1, 1, y.numel()).reshape(y.shape)
    return y.detach(), torch.autograd.grad(y, tensors, dy)


@pytest.mark.parametrize("route", ops.ROUTES)
@pytest.mark.parametrize("variant", ["official", "paper"])
def test_every_route_matches_the_readable_path(stand_in_kernels, route, variant):
    tensors, pool = block(variant=variant)
    want, want_grads = values_and_grads(ops.self_attention, tensors, pool)
    with ops.force_route(route):
        got, grads = values_and_grads(ops.self_attention, tensors, pool)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    for a, b in zip(grads, want_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_the_kernel_route_runs_the_custom_ops(stand_in_kernels):
    calls = []
    forward = attention.forward_in_torch
    attention.attention_forward.register_kernel(
        "cpu", lambda q, k, v: calls.append(q.shape) or forward(q, k, v)
    )
    try:
        tensors, pool = block()
        for chosen in (ops.force_route("kernel"), backend.force_backend("cupy")):
            with chosen:
                values_and_grads(ops.self_attention, tensors, pool)
        values_and_grads(ops.self_attention, tensors, pool)  # default on a CPU: readable
    finally:
        attention.attention_forward.register_kernel("cpu", forward)
    assert calls == [(2, 24, 8), (2, 24, 8)]  # d_qk = 2 padded to the compiled 8


def test_no_kernel_runs_unless_chosen(stand_in_kernels):
    """The kernels are not measured faster than PyTorch: the default never picks one."""
    x = torch.zeros(2, 3, 4)
    assert backend.AUTOMATIC == frozenset()
    for name in backend.OP_NAMES:
        assert backend.kernel_for(name, x, x, x) is None
        with backend.force_backend("cupy"):
            assert backend.kernel_for(name, x, x, x) is stand_ins.KERNELS[name][0]


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_kernel_route_compiles_in_the_models_layout(stand_in_kernels, variant):
    """Bug: the backward op's fake kept q, k, v's strides (empty_like) while the op returns
    contiguous tensors, and Inductor's stride assertions failed in every compiled backward
    that handed the op non-contiguous views (the paper variant's heads need no padding)."""
    tensors, pool = block(C=64, variant=variant, H=4, W=4)
    want, want_grads = values_and_grads(ops.self_attention, tensors, pool)
    torch._dynamo.reset()
    compiled = torch.compile(ops.self_attention, fullgraph=True)
    with ops.force_route("kernel"):
        got, grads = values_and_grads(compiled, tensors, pool)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    for a, b in zip(grads, want_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_compiled_kernel_takes_non_contiguous_views(stand_in_kernels):
    g = torch.Generator().manual_seed(1)
    q, k, v = (
        torch.randn(2, c, n, generator=g).transpose(1, 2).requires_grad_()
        for c, n in ((8, 16), (8, 4), (32, 4))
    )

    def loss(q, k, v):
        return (attention.fused_attention(q, k, v) ** 2).sum()

    want = torch.autograd.grad(loss(q, k, v), (q, k, v))
    torch._dynamo.reset()
    got = torch.autograd.grad(torch.compile(loss, fullgraph=True)(q, k, v), (q, k, v))
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)


def test_attention_ops_pass_opcheck_with_non_contiguous_inputs(stand_in_kernels):
    g = torch.Generator().manual_seed(3)

    def tokens(c, n):  # (B, c, n) laid out channel-first, read as (B, n, c) like `_tokens`
        return torch.randn(2, c, n, generator=g).transpose(1, 2)

    q, k, v = tokens(8, 9), tokens(8, 5), tokens(32, 5)
    assert not (q.is_contiguous() or k.is_contiguous() or v.is_contiguous())
    torch.library.opcheck(attention.attention_forward, (q, k, v))
    o, lse = attention.forward_in_torch(q, k, v)
    grad_o = torch.randn(2, 32, 9, generator=g).transpose(1, 2)
    torch.library.opcheck(attention.attention_backward, (q, k, v, o, lse, grad_o))
    with torch.no_grad():
        for fake, real in zip(
            attention.attention_backward(*(t.to("meta") for t in (q, k, v, o, lse, grad_o))),
            attention.attention_backward(q, k, v, o, lse, grad_o),
            strict=True,
        ):
            assert fake.stride() == real.stride()


def test_sdpa_gets_last_dim_contiguous_inputs(monkeypatch):
    """Bug: SDPA got `_tokens` views (last-dim stride != 1), which its fused CUDA backends
    refuse, so it silently ran the math backend and stored the N x N_k scores."""
    seen = []
    sdpa = F.scaled_dot_product_attention

    def spy(q, k, v, **kwargs):
        seen.append([t.stride(-1) for t in (q, k, v)])
        return sdpa(q, k, v, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    tensors, pool = block(requires_grad=False)
    for memory_format in (torch.contiguous_format, torch.channels_last):
        x, *weights = tensors
        with ops.force_route("sdpa"):
            ops.self_attention(x.contiguous(memory_format=memory_format), *weights, 0.5, pool=pool)
    assert seen == [[1, 1, 1], [1, 1, 1]]


def test_heads_the_kernel_was_not_compiled_for_fall_back_to_sdpa(stand_in_kernels, monkeypatch):
    """Bug: d_qk > 64 or d_v > 128 (e.g. `--model.g_attention 16` on the 128 model) raised."""
    used = []
    monkeypatch.setattr(
        attention_op,
        "_sdpa",
        lambda q, k, v: used.append(q.shape) or torch.softmax(q @ k.transpose(1, 2), -1) @ v,
    )
    monkeypatch.setattr(backend, "_warned", set())
    x = torch.randn(2, 8, 4, 4)
    weights = [torch.randn(72, 8), torch.randn(72, 8), torch.randn(8, 8), torch.randn(8, 8)]
    want = ops.self_attention(x, *weights, 0.5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for chosen in (ops.force_route("kernel"), backend.force_backend("cupy")):
            with chosen:
                torch.testing.assert_close(ops.self_attention(x, *weights, 0.5), want)
    # the forced kernel route falls back to SDPA; the forced backend to the default route
    # (SDPA on CUDA, the readable path on this CPU)
    assert used == [(2, 16, 72)]
    messages = [str(w.message) for w in caught if w.category is RuntimeWarning]
    assert len(messages) == 1 and "d_qk=72" in messages[0], messages


def test_a_kernel_that_does_not_compile_falls_back_with_one_warning(monkeypatch):
    """With CuPy but no <cuda_bf16.h>, the bf16 compile failed mid-forward with no fallback."""

    def no_compiler(*args):
        raise RuntimeError("compiling attention.cu failed: cuda_bf16.h: No such file")

    monkeypatch.setattr(attention, "get_kernel", no_compiler)
    monkeypatch.setattr(attention, "_compile_failures", {})
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, n, d, generator=g) for n, d in ((9, 8), (5, 8), (5, 32)))
    grad_o = torch.randn(2, 9, 32, generator=g)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # the custom ops' own implementations, as a CUDA call runs them
        o, lse = attention._forward(q, k, v)
        grads = attention._backward_op(q, k, v, o, lse, grad_o)
        attention._forward(q, k, v)
    torch.testing.assert_close((o, lse), attention.forward_in_torch(q, k, v))
    torch.testing.assert_close(grads, attention.backward_in_torch(q, k, v, o, lse, grad_o))
    assert len([w for w in caught if "did not compile" in str(w.message)]) == 1


def test_forced_routes_and_backends_name_the_problem():
    with pytest.raises(ValueError, match="unknown attention route 'flash'"):
        with ops.force_route("flash"):
            pass
    tensors, pool = block(requires_grad=False)
    if backend.cupy_usable():
        pytest.skip("CuPy and a GPU are present here")
    with ops.force_route("kernel"), pytest.raises(RuntimeError, match="float32 on cpu"):
        ops.self_attention(tensors[0], *tensors[1:], 0.5, pool=pool)
