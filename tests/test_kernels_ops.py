"""The PyTorch side of the CuPy kernels, checked without a GPU.

The CUDA code itself only runs in tests/test_kernels_gpu.py. Here each custom op gets a CPU
"twin": plain PyTorch that computes what the kernel computes, with the kernel's own formulas
(the attention backward recomputes P = exp(S - L) and uses dS = P (dP - D), as attention.cu
does). With the twins registered as the ops' CPU kernels, the rest is the real code: the op
schemas, `register_fake`, `register_autograd`, head-size padding, packing of the power iteration,
and `torch.library.opcheck`. A NumPy model of attention.cu's tiled online softmax checks the
update order of the running max and sum for tile sizes that do and do not divide N_k.
"""

import kernel_stand_ins as stand_ins
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from kernel_stand_ins import power_iteration_twin

from accelerated import backend
from accelerated.kernels import attention, hinge, kernels_available, power_iteration


@pytest.fixture(scope="module")
def cpu_twins():
    """Register the stand-ins as the ops' CPU kernels (tests/kernel_stand_ins.py)."""
    stand_ins.register_ops()


def softmax_attention(q, k, v):
    """The plain definition: softmax over the keys of q k^T (no scaling), times v."""
    return torch.softmax(q @ k.transpose(1, 2), dim=-1) @ v


# ---- import and registration on a machine without CUDA ---------------------------------------
def test_import_registers_nothing_without_cuda():
    if kernels_available():
        pytest.skip("CuPy and a CUDA device are present: the kernels do register here")
    x = torch.zeros(2, 3)
    for name in backend.OP_NAMES:
        assert backend.kernel_for(name, x) is None
    assert not any(device == "cuda" for _, device in backend._kernels)


def test_fake_shapes_on_meta_tensors():
    q = torch.empty(3, 100, 12, device="meta")
    k = torch.empty(3, 25, 12, device="meta")
    v = torch.empty(3, 25, 40, device="meta")
    assert attention.fused_attention(q, k, v).shape == (3, 100, 40)
    o, lse = attention.attention_forward(F.pad(q, (0, 4)), F.pad(k, (0, 4)), F.pad(v, (0, 24)))
    assert o.shape == (3, 100, 64) and lse.shape == (3, 100) and lse.dtype == torch.float32
    W, u = torch.empty(4, 6, 5, device="meta"), torch.empty(4, 6, device="meta")
    sigma, u_new, v_new = power_iteration.power_iteration_batched(W, u)
    assert sigma.shape == (4,) and u_new.shape == (4, 6) and v_new.shape == (4, 5)
    d = torch.empty(7, device="meta")
    assert hinge.hinge_loss_discriminator(d, d[:3]).shape == ()


@pytest.mark.parametrize(
    ("d_qk", "d_v", "padded"),
    [(8, 8, (8, 8)), (12, 40, (16, 64)), (16, 64, (16, 64)), (33, 128, (64, 128)), (1, 1, (8, 8))],
)
def test_head_sizes_pad_to_the_next_compiled_ones(d_qk, d_v, padded):
    assert attention.compiled_head_sizes(d_qk, d_v) == padded


@pytest.mark.parametrize(("d_qk", "d_v"), [(65, 32), (16, 129)])
def test_head_sizes_beyond_the_compiled_ones_are_refused(d_qk, d_v):
    q, k = torch.zeros(1, 4, d_qk), torch.zeros(1, 4, d_qk)
    with pytest.raises(ValueError, match="falls back to SDPA"):
        attention.fused_attention(q, k, torch.zeros(1, 4, d_v))


@pytest.mark.parametrize(
    ("shapes", "dtype", "match"),
    [
        (((2, 5, 8), (2, 4, 8), (2, 3, 8)), torch.float32, "must be"),  # N_k differs
        (((2, 5, 8), (2, 4, 16), (2, 4, 8)), torch.float32, "must be"),  # d_qk differs
        (((2, 5), (2, 4, 8), (2, 4, 8)), torch.float32, "must be"),
        (((2, 0, 8), (2, 4, 8), (2, 4, 8)), torch.float32, "at least one"),
        (((2, 5, 8), (2, 4, 8), (2, 4, 8)), torch.float16, "float32 or all bfloat16"),
    ],
)
def test_bad_attention_input_raises_one_clear_error(shapes, dtype, match):
    q, k, v = (torch.zeros(s, dtype=dtype) for s in shapes)
    with pytest.raises(ValueError, match=match):
        attention.fused_attention(q, k, v)


def test_bad_power_iteration_input_raises_one_clear_error():
    with pytest.raises(ValueError, match=r"\(M, m, n\)"):
        power_iteration.power_iteration_batched(torch.zeros(2, 3), torch.zeros(2))
    with pytest.raises(ValueError, match="one u per weight"):
        power_iteration.power_iteration_many([torch.zeros(2, 3)], [])
    with pytest.raises(ValueError, match="n_steps"):
        power_iteration.power_iteration_many([torch.zeros(2, 3)], [torch.zeros(2)], n_steps=0)


# ---- the autograd and packing wiring, with the twins as CPU kernels --------------------------
@given(
    B=st.integers(1, 3),
    N=st.integers(1, 40),
    N_k=st.integers(1, 20),
    d_qk=st.integers(1, 33),
    d_v=st.integers(1, 70),
    seed=st.integers(0, 2**16),
)
def test_fused_attention_values_and_gradients_match_autograd(cpu_twins, B, N, N_k, d_qk, d_v, seed):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (
        torch.randn(B, n, d, generator=g, requires_grad=True)
        for n, d in ((N, d_qk), (N_k, d_qk), (N_k, d_v))
    )
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    grad_o = torch.randn(B, N, d_v, generator=g)
    o = attention.fused_attention(q, k, v)
    expected = softmax_attention(q64, k64, v64)
    torch.testing.assert_close(o, expected.float(), rtol=1e-4, atol=1e-5)
    grads = torch.autograd.grad(o, (q, k, v), grad_o)
    expected_grads = torch.autograd.grad(expected, (q64, k64, v64), grad_o.double())
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want.float(), rtol=1e-4, atol=1e-4)


def test_attention_ops_pass_opcheck(cpu_twins):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 9, 8, generator=g, requires_grad=True)
    k = torch.randn(2, 5, 8, generator=g, requires_grad=True)
    v = torch.randn(2, 5, 32, generator=g, requires_grad=True)
    torch.library.opcheck(attention.attention_forward, (q, k, v))
    o, lse = attention.forward_in_torch(q.detach(), k.detach(), v.detach())
    args = (q.detach(), k.detach(), v.detach(), o, lse, torch.randn(2, 9, 32, generator=g))
    torch.library.opcheck(attention.attention_backward, args)


@given(
    shapes=st.lists(st.tuples(st.integers(1, 9), st.integers(1, 9)), min_size=1, max_size=4),
    n_steps=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_power_iteration_packing_matches_one_matrix_at_a_time(cpu_twins, shapes, n_steps, seed):
    g = torch.Generator().manual_seed(seed)
    weights = [torch.randn(m, n, generator=g) for m, n in shapes]
    us = [F.normalize(torch.randn(m, generator=g), dim=0) for m, _ in shapes]
    sigma, u_new, v_new = power_iteration.power_iteration_many(weights, us, n_steps)
    for b, (W, u) in enumerate(zip(weights, us, strict=True)):
        s_b, u_b, v_b = power_iteration_twin([W], u, n_steps, 1e-12)
        torch.testing.assert_close(sigma[b], s_b[0])
        torch.testing.assert_close(u_new[b], u_b)
        torch.testing.assert_close(v_new[b], v_b)


def test_stacked_power_iteration_matches_the_ops_torch_path(cpu_twins):
    from accelerated.ops import power_iteration as ops_power_iteration

    g = torch.Generator().manual_seed(1)
    W = torch.randn(3, 6, 4, generator=g)
    u = F.normalize(torch.randn(3, 6, generator=g), dim=1)
    sigma, u_new, v_new = power_iteration.power_iteration_batched(W, u, 2)
    for b in range(3):
        s_b, u_b, v_b = ops_power_iteration(W[b], u[b], 2)
        torch.testing.assert_close(sigma[b], s_b)
        torch.testing.assert_close(u_new[b], u_b)
        torch.testing.assert_close(v_new[b], v_b)
    torch.library.opcheck(
        power_iteration.power_iteration_packed, (list(W.unbind(0)), u.reshape(-1), 2, 1e-12)
    )


@given(
    n_real=st.integers(1, 50),
    n_fake=st.integers(1, 50),
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_hinge_losses_and_gradients_match_autograd(cpu_twins, n_real, n_fake, seed, dtype):
    g = torch.Generator().manual_seed(seed)
    d_real = (2 * torch.randn(n_real, generator=g)).to(dtype).requires_grad_()
    d_fake = (2 * torch.randn(n_fake, generator=g)).to(dtype).requires_grad_()
    loss_d = hinge.hinge_loss_discriminator(d_real, d_fake)
    loss_g = hinge.hinge_loss_generator(d_fake)
    assert loss_d.dtype == dtype and loss_g.dtype == dtype
    want_d = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
    want_g = -d_fake.mean()
    torch.testing.assert_close(loss_d, want_d, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(loss_g, want_g, rtol=1e-5, atol=1e-6)
    got = torch.autograd.grad(loss_d + 2 * loss_g, (d_real, d_fake))
    want = torch.autograd.grad(want_d + 2 * want_g, (d_real, d_fake))
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_hinge_ops_pass_opcheck(cpu_twins):
    d_real = torch.tensor([2.0, 1.0, 0.5, -3.0], requires_grad=True)
    d_fake = torch.tensor([-2.0, -1.0, 0.0], requires_grad=True)
    torch.library.opcheck(hinge.hinge_d_forward, (d_real, d_fake))
    torch.library.opcheck(hinge.hinge_g_forward, (d_fake,))
    torch.library.opcheck(
        hinge.hinge_d_backward, (d_real.detach(), d_fake.detach(), torch.tensor(1.0))
    )


# ---- a NumPy model of attention.cu's tiled online softmax -------------------------------------
def tiled_online_attention(q, k, v, tile):
    """attention.cu's forward loop for one query row at a time: per tile, the tile max first,
    then rescale the running sums to the new max, then add the tile's terms."""
    o = np.empty((q.shape[0], v.shape[1]))
    lse = np.empty(q.shape[0])
    for j, g_j in enumerate(q):
        m, l, acc = -np.inf, 0.0, np.zeros(v.shape[1])
        for start in range(0, len(k), tile):
            s = k[start : start + tile] @ g_j  # scores of this tile
            m_new = max(m, s.max())
            rescale = np.exp(m - m_new)
            l, acc = l * rescale, acc * rescale
            p = np.exp(s - m_new)
            l += p.sum()
            acc += p @ v[start : start + tile]
            m = m_new
        o[j], lse[j] = acc / l, m + np.log(l)
    return o, lse


@given(
    N=st.integers(1, 12),
    N_k=st.integers(1, 70),
    tile=st.sampled_from([1, 5, 32]),
    scale=st.sampled_from([0.1, 3.0, 30.0]),
    seed=st.integers(0, 2**16),
)
def test_tiled_online_softmax_equals_softmax(N, N_k, tile, scale, seed):
    rng = np.random.default_rng(seed)
    q, k = scale * rng.standard_normal((N, 8)), rng.standard_normal((N_k, 8))
    v = rng.standard_normal((N_k, 4))
    o, lse = tiled_online_attention(q, k, v, tile)
    s = q @ k.T
    beta = np.exp(s - s.max(1, keepdims=True))
    beta /= beta.sum(1, keepdims=True)
    np.testing.assert_allclose(o, beta @ v, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(lse, s.max(1) + np.log(np.exp(s - s.max(1, keepdims=True)).sum(1)))
