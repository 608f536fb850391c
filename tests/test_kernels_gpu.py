"""The CuPy kernels on a GPU, against plain PyTorch (float64) and the NumPy reference.

Values and gradients, with awkward sizes (N not a multiple of the 64-thread block or the 32-key
tile, one query, one key, batch 1 and 256), non-contiguous inputs, bfloat16, a non-default
stream, and `torch.library.opcheck` on every op. Skipped where there is no CUDA device or no CuPy.
"""

import importlib.util

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from compiled_block import compiled_self_attention
from hypothesis import given
from hypothesis import strategies as st

from accelerated import backend, ops
from accelerated.kernels import attention, hinge, power_iteration
from reference import attention as ref_attention
from reference import hinge as ref_hinge
from reference import spectral_norm as ref_sn

pytestmark = [
    pytest.mark.gpu,
    # where there is a GPU but no CuPy (without a GPU the gpu marker's reason is the one shown)
    pytest.mark.skipif(
        torch.cuda.is_available() and importlib.util.find_spec("cupy") is None,
        reason="needs CuPy: pip install -e '.[cuda13]' (or '[cuda12]')",
    ),
]
CUDA = "cuda"


def softmax_attention(q, k, v):
    """The plain definition: softmax over the keys of q k^T (no 1/sqrt(d) scaling), times v."""
    return torch.softmax(q @ k.transpose(1, 2), dim=-1) @ v


def random_qkv(B, N, N_k, d_qk, d_v, scale, seed, dtype=torch.float32):
    g = torch.Generator(device=CUDA).manual_seed(seed)
    q = scale * torch.randn(B, N, d_qk, generator=g, device=CUDA)
    k = torch.randn(B, N_k, d_qk, generator=g, device=CUDA)
    v = torch.randn(B, N_k, d_v, generator=g, device=CUDA)
    grad_o = torch.randn(B, N, d_v, generator=g, device=CUDA)
    return q.to(dtype), k.to(dtype), v.to(dtype), grad_o.to(dtype)


def assert_close_normwise(got, want, tol, name):
    """max |got - want| <= tol * max(1, max |want|): float32 rounding of the scores grows with
    their size, and gradient entries near 0 come from cancelling sums of large terms, so an
    entrywise relative check would flag rounding; a wrong row or tile is still off by O(1)."""
    assert got.shape == want.shape, name
    error = (got.double() - want).abs().max().item()
    scale = max(1.0, want.abs().max().item())
    assert error <= tol * scale, f"{name}: max error {error:.3g} > {tol} * {scale:.3g}"


def check_against_float64(q, k, v, grad_o, tol):
    """fused_attention's output and gradients vs autograd of the definition in float64."""
    q, k, v = (t.detach().requires_grad_() for t in (q, k, v))
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    o = attention.fused_attention(q, k, v)
    expected = softmax_attention(q64, k64, v64)
    assert o.dtype == q.dtype
    assert_close_normwise(o, expected, tol, "o")
    grads = torch.autograd.grad(o, (q, k, v), grad_o)
    expected_grads = torch.autograd.grad(expected, (q64, k64, v64), grad_o.double())
    for name, got, want in zip("qkv", grads, expected_grads, strict=True):
        assert got.dtype == q.dtype
        assert_close_normwise(got, want, tol, f"d{name}")


@given(
    B=st.integers(1, 4),
    N=st.integers(1, 300),
    N_k=st.integers(1, 150),
    d_qk=st.sampled_from([8, 12, 16, 32, 64]),
    d_v=st.sampled_from([8, 32, 40, 64, 128]),
    scale=st.sampled_from([0.1, 1.0, 3.0]),
    seed=st.integers(0, 2**16),
)
def test_attention_float32_values_and_gradients(B, N, N_k, d_qk, d_v, scale, seed):
    q, k, v, grad_o = random_qkv(B, N, N_k, d_qk, d_v, scale, seed)
    check_against_float64(q, k, v, grad_o, tol=2e-4)


@given(
    N=st.integers(1, 200),
    N_k=st.integers(1, 100),
    sizes=st.sampled_from([(8, 32), (16, 64), (32, 128), (16, 16)]),
    seed=st.integers(0, 2**16),
)
def test_attention_bfloat16_values_and_gradients(N, N_k, sizes, seed):
    q, k, v, grad_o = random_qkv(2, N, N_k, *sizes, 0.5, seed, dtype=torch.bfloat16)
    # float32 accumulation; the error is bfloat16 rounding of the stored outputs and gradients
    check_against_float64(q, k, v, grad_o, tol=3e-2)


@pytest.mark.parametrize(
    ("B", "N", "N_k", "d_qk", "d_v"),
    [
        (1, 1, 1, 8, 8),  # one query, one key
        (1, 65, 33, 16, 64),  # one past the block (64) and the tile (32)
        (256, 64, 16, 8, 32),  # a large batch (grid.y)
        (3, 1024, 256, 32, 128),  # SAGAN's G at 32x32, official variant
    ],
)
def test_attention_awkward_sizes(B, N, N_k, d_qk, d_v):
    q, k, v, grad_o = random_qkv(B, N, N_k, d_qk, d_v, 1.0, seed=B + N)
    check_against_float64(q, k, v, grad_o, tol=2e-4)


def test_attention_non_contiguous_inputs():
    q, k, v, grad_o = random_qkv(2, 100, 25, 16, 64, 1.0, seed=7)
    # the same values, laid out channel-first and read through transposed views
    q_t, k_t, v_t = (t.transpose(1, 2).contiguous().transpose(1, 2) for t in (q, k, v))
    assert not q_t.is_contiguous()
    check_against_float64(q_t, k_t, v_t, grad_o, tol=2e-4)
    # and every other key of a larger tensor
    k_big = torch.repeat_interleave(k, 2, dim=1)[:, ::2]
    assert not k_big.is_contiguous()
    torch.testing.assert_close(
        attention.fused_attention(q, k_big, v), attention.fused_attention(q, k, v)
    )


def test_attention_runs_on_the_current_stream():
    """The kernels must queue on PyTorch's current stream: here a side stream that first sleeps,
    then writes q into a buffer full of NaN. A launch on any other stream would read the NaN
    before the copy lands; on the side stream it reads q."""
    q, k, v, _ = random_qkv(4, 300, 75, 16, 64, 1.0, seed=3)
    expected = attention.fused_attention(q, k, v)
    q_side = torch.full_like(q, float("nan"))
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        torch.cuda._sleep(200_000_000)  # about 0.1 s of GPU clock cycles on this stream only
        q_side.copy_(q)
        o_side = attention.fused_attention(q_side, k, v)
    torch.cuda.current_stream().wait_stream(side)
    torch.testing.assert_close(o_side, expected)


@pytest.mark.parametrize("layout", ["contiguous", "tokens"])
def test_attention_ops_pass_opcheck(layout):
    q, k, v, grad_o = random_qkv(2, 70, 20, 16, 64, 1.0, seed=11)
    if layout == "tokens":  # channel-first memory read as (B, N, c), as the model hands them
        q, k, v = (t.transpose(1, 2).contiguous().transpose(1, 2) for t in (q, k, v))
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    torch.library.opcheck(attention.attention_forward, (q, k, v))
    o, lse = attention.attention_forward(q.detach(), k.detach(), v.detach())
    args = (q.detach(), k.detach(), v.detach(), o, lse, grad_o)
    torch.library.opcheck(attention.attention_backward, args)


@pytest.mark.parametrize(("C", "variant"), [(64, "official"), (128, "official"), (64, "paper")])
def test_self_attention_block_matches_numpy_reference(C, variant):
    """The whole block through `accelerated.ops` with the kernel forced, vs reference/."""
    c_qk, c_v, pool = ops.attention_dims(C, variant)
    rng = np.random.default_rng(C)
    x = rng.standard_normal((2, C, 16, 16))
    W = {
        "W_f": rng.standard_normal((c_qk, C)) / np.sqrt(C),
        "W_g": rng.standard_normal((c_qk, C)) / np.sqrt(C),
        "W_h": rng.standard_normal((c_v, C)) / np.sqrt(C),
        "W_v": rng.standard_normal((C, c_v)) / np.sqrt(c_v),
    }
    gamma, dy = 0.7, rng.standard_normal(x.shape)
    y_ref, _ = ref_attention.self_attention(x, *W.values(), gamma, pool=pool)
    grads_ref = ref_attention.self_attention_backward(dy, x, *W.values(), gamma, pool=pool)

    def cuda(a):
        return torch.tensor(a, dtype=torch.float32, device=CUDA, requires_grad=True)

    x_t, W_t, gamma_t = cuda(x), {name: cuda(a) for name, a in W.items()}, cuda(gamma)
    with backend.force_backend("cupy"):
        y = ops.self_attention(x_t, *W_t.values(), gamma_t, pool=pool)
    torch.testing.assert_close(y.double().cpu(), torch.from_numpy(y_ref), rtol=1e-4, atol=1e-4)
    y.backward(torch.tensor(dy, dtype=torch.float32, device=CUDA))
    for name, t in [("x", x_t), *W_t.items(), ("gamma", gamma_t)]:
        want = torch.as_tensor(grads_ref[name], dtype=torch.float64)
        torch.testing.assert_close(t.grad.double().cpu(), want, rtol=1e-3, atol=1e-3, msg=name)


# ---- spectral normalisation --------------------------------------------------------------------
@given(
    shapes=st.lists(st.tuples(st.integers(1, 300), st.integers(1, 700)), min_size=1, max_size=6),
    n_steps=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_power_iteration_many_shapes_in_one_launch(shapes, n_steps, seed):
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal(shape) for shape in shapes]
    us = [rng.standard_normal(shape[0]) for shape in shapes]
    sigma, u_new, v_new = power_iteration.power_iteration_many(
        [torch.tensor(W, dtype=torch.float32, device=CUDA) for W in weights],
        [torch.tensor(u, dtype=torch.float32, device=CUDA) for u in us],
        n_steps,
    )
    for b, (W, u) in enumerate(zip(weights, us, strict=True)):
        s_ref, u_ref, v_ref = ref_sn.power_iteration(W, u, n_steps)
        np.testing.assert_allclose(sigma[b].item(), s_ref, rtol=1e-4)
        np.testing.assert_allclose(u_new[b].cpu().numpy(), u_ref, rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(v_new[b].cpu().numpy(), v_ref, rtol=1e-3, atol=1e-4)


def test_power_iteration_matches_torch_parametrization():
    """One training step of torch's spectral_norm on a conv. Torch updates u from its stored v
    first; the kernel follows Algorithm 1 (v from u first), so torch's step is the kernel's step
    on W^T from u = torch's v, with u and v swapped; sigma and W / sigma are the same."""
    conv = torch.nn.Conv2d(64, 128, 3).to(CUDA)
    sn_conv = torch.nn.utils.parametrizations.spectral_norm(conv)
    param = sn_conv.parametrizations.weight
    v0 = param[0]._v.clone()
    W = param.original.detach().flatten(1)  # (128, 576)
    W_sn = sn_conv.weight  # training mode: one step, updates _u and _v
    sigma, u_new, v_new = power_iteration.power_iteration_many(
        [W.T.contiguous()], [v0], 1, eps=param[0].eps
    )
    torch.testing.assert_close(v_new[0], param[0]._u, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(u_new[0], param[0]._v, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(param.original / sigma[0], W_sn.detach(), rtol=1e-4, atol=1e-6)


def test_spectral_norm_op_kernel_matches_torch_path():
    g = torch.Generator(device=CUDA).manual_seed(5)
    W = torch.randn(96, 32, 3, 3, generator=g, device=CUDA, requires_grad=True)
    u = F.normalize(torch.randn(96, generator=g, device=CUDA), dim=0)
    results = {}
    for name in ("torch", "cupy"):
        with backend.force_backend(name):
            W_sn, sigma, _, _ = ops.spectral_norm(W, u, n_steps=2)
        (grad,) = torch.autograd.grad((W_sn**2).sum(), W)
        results[name] = (W_sn, sigma, grad)
    for got, want in zip(results["cupy"], results["torch"], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_power_iteration_op_passes_opcheck():
    g = torch.Generator(device=CUDA).manual_seed(2)
    weights = [torch.randn(m, n, generator=g, device=CUDA) for m, n in [(5, 7), (64, 576)]]
    u = torch.randn(69, generator=g, device=CUDA)
    torch.library.opcheck(power_iteration.power_iteration_packed, (weights, u, 1, 1e-12))


# ---- hinge loss --------------------------------------------------------------------------------
@given(
    n_real=st.integers(1, 600),
    n_fake=st.integers(1, 600),
    kinks=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_hinge_losses_and_gradients_match_reference(n_real, n_fake, kinks, seed):
    rng = np.random.default_rng(seed)
    d_real, d_fake = 2 * rng.standard_normal(n_real), 2 * rng.standard_normal(n_fake)
    if kinks:  # exactly on the hinges, where the gradient is 0
        d_real[::3], d_fake[::3] = 1.0, -1.0
    real = torch.tensor(d_real, dtype=torch.float32, device=CUDA, requires_grad=True)
    fake = torch.tensor(d_fake, dtype=torch.float32, device=CUDA, requires_grad=True)
    loss_d = hinge.hinge_loss_discriminator(real, fake)
    loss_g = hinge.hinge_loss_generator(fake)
    np.testing.assert_allclose(
        loss_d.item(), ref_hinge.hinge_loss_discriminator(d_real, d_fake), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        loss_g.item(), ref_hinge.hinge_loss_generator(d_fake), rtol=1e-5, atol=1e-6
    )
    grad_real, grad_fake = torch.autograd.grad(loss_d, (real, fake))
    want_real, want_fake = ref_hinge.hinge_loss_discriminator_backward(d_real, d_fake)
    np.testing.assert_allclose(grad_real.cpu().numpy(), want_real, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(grad_fake.cpu().numpy(), want_fake, rtol=1e-5, atol=1e-8)
    (grad_g,) = torch.autograd.grad(loss_g, fake)
    want_g = ref_hinge.hinge_loss_generator_backward(d_fake)
    np.testing.assert_allclose(grad_g.cpu().numpy(), want_g, rtol=1e-5, atol=1e-8)


def test_hinge_op_kernels_match_torch_path():
    """Through `accelerated.ops` (what training calls), (B,) logits as D returns them."""
    g = torch.Generator(device=CUDA).manual_seed(9)
    d_real = torch.randn(64, generator=g, device=CUDA).requires_grad_()
    d_fake = torch.randn(64, generator=g, device=CUDA).requires_grad_()
    results = {}
    for name in ("torch", "cupy"):
        with backend.force_backend(name):
            loss = ops.hinge_loss_discriminator(d_real, d_fake) + ops.hinge_loss_generator(d_fake)
        results[name] = (loss, *torch.autograd.grad(loss, (d_real, d_fake)))
    for got, want in zip(results["cupy"], results["torch"], strict=True):
        assert got.dtype == want.dtype and got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_hinge_ops_pass_opcheck():
    d_real = torch.tensor([2.0, 1.0, 0.5, -3.0], device=CUDA, requires_grad=True)
    d_fake = torch.tensor([-2.0, -1.0, 0.0], device=CUDA, requires_grad=True)
    torch.library.opcheck(hinge.hinge_d_forward, (d_real, d_fake))
    torch.library.opcheck(hinge.hinge_g_forward, (d_fake,))
    grad = torch.tensor(1.0, device=CUDA)
    torch.library.opcheck(hinge.hinge_d_backward, (d_real.detach(), d_fake.detach(), grad))
    torch.library.opcheck(hinge.hinge_g_backward, (d_fake.detach(), grad))


def test_kernels_are_registered_on_cuda_and_run_only_where_chosen():
    x = torch.zeros(2, 2, device=CUDA)
    for name in backend.OP_NAMES:
        assert backend.kernel_for(name, x, x, x) is None  # none is measured faster yet
    with backend.force_backend("cupy"):
        assert backend.kernel_for("self_attention", x, x, x) is attention.fused_attention
        assert (
            backend.kernel_for("power_iteration_batched", x)
            is power_iteration.power_iteration_batched
        )
        assert backend.kernel_for("hinge_loss_discriminator", x) is hinge.hinge_loss_discriminator
        assert backend.kernel_for("hinge_loss_generator", x) is hinge.hinge_loss_generator


@pytest.mark.parametrize("route", ops.ROUTES)
def test_every_route_trains_the_block_under_compile_in_bf16(route):
    """The model's layout on CUDA under torch.compile and bf16 autocast, for each route."""
    x = torch.randn(4, 64, 16, 16, device=CUDA, requires_grad=True)
    c_qk, c_v, pool = ops.attention_dims(64, "official")
    weights = [
        torch.randn(*shape, device=CUDA, requires_grad=True) / 8
        for shape in ((c_qk, 64), (c_qk, 64), (c_v, 64), (64, c_v))
    ]
    block = compiled_self_attention()  # fullgraph: a graph break fails the test
    with ops.force_route(route), torch.autocast("cuda", dtype=torch.bfloat16):
        y = block(x, *weights, 0.5, pool=pool)
    want = ops.self_attention(x, *weights, 0.5, pool=pool)
    assert_close_normwise(y.float(), want.double(), 5e-2, route)
    y.float().square().sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (x, *weights))
