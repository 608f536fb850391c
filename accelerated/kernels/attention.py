r"""Fused SAGAN attention (eqs. 1-2) as PyTorch custom ops backed by `attention.cu`.

For queries $q = g(x)$ (B, N, d_qk), keys $k = f(x)$ (B, N_k, d_qk) and values $v = h(x)$
(B, N_k, d_v):

$$o_j = \sum_i \beta_{j,i}\, v_i, \qquad \beta_{j,i} = \operatorname{softmax}_i(q_j^\top k_i)$$

with no $1/\sqrt{d}$ scaling, computed tile by tile with an online softmax so that the
$N \times N_k$ matrix $\beta$ never exists. The forward also returns
$L_j = \log \sum_i \exp(q_j^\top k_i)$, which the backward uses to recompute
$P_{ji} = \exp(q_j^\top k_i - L_j) = \beta_{j,i}$:

$$dV_i = \sum_j P_{ji}\, dO_j, \quad dS_{ji} = P_{ji}\,(dO_j^\top v_i - D_j), \quad
D_j = dO_j^\top o_j, \quad dQ_j = \sum_i dS_{ji} k_i, \quad dK_i = \sum_j dS_{ji} q_j.$$

Two custom ops, `sagan::attention_forward` and `sagan::attention_backward`, are tied together
by `register_autograd`; `fused_attention` is the function to call. It pads head sizes to the
compiled ones (zero columns change neither the scores nor the kept outputs).
"""

import numpy as np
import torch
import torch.nn.functional as F

from accelerated.kernels.cupy_module import CUDA_TYPES, get_kernel, launch

SOURCE = "attention.cu"
# Head sizes compiled as template instantiations; others are zero-padded up to the next one.
D_QK_SIZES = (8, 16, 32, 64)
D_V_SIZES = (8, 16, 32, 64, 128)
THREADS = 64  # queries (forward, dq) or keys (dkdv) per block
KERNELS = ("attention_forward", "attention_backward_dq", "attention_backward_dkdv")
MAX_BATCH = 65535  # the batch is the grid's y dimension


def kernel_name(kernel: str, dtype: torch.dtype, d_qk: int, d_v: int) -> str:
    """The template instantiation, e.g. `attention_forward<float, 16, 64>`."""
    return f"{kernel}<{CUDA_TYPES[dtype]}, {d_qk}, {d_v}>"


def instantiations(dtype: torch.dtype, head_sizes=None) -> list[str]:
    """The kernels compiled for `dtype` and `(D_QK, D_V)` pairs (default: every pair that
    `fused_attention` may compile), for the nvcc test."""
    if head_sizes is None:
        head_sizes = [(d_qk, d_v) for d_qk in D_QK_SIZES for d_v in D_V_SIZES]
    return [kernel_name(kernel, dtype, *sizes) for sizes in head_sizes for kernel in KERNELS]


def _padded(size: int, sizes: tuple[int, ...], what: str) -> int:
    for candidate in sizes:
        if size <= candidate:
            return candidate
    raise ValueError(
        f"the CuPy attention kernel supports {what} up to {sizes[-1]}, got {size}: "
        "run this layer with the torch backend (SAGAN_BACKEND=torch)"
    )


def compiled_head_sizes(d_qk: int, d_v: int) -> tuple[int, int]:
    """The instantiated `(D_QK, D_V)` that heads of sizes `d_qk`, `d_v` are zero-padded to."""
    return _padded(d_qk, D_QK_SIZES, "d_qk"), _padded(d_v, D_V_SIZES, "d_v")


def _check(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    if q.dim() != 3 or k.dim() != 3 or v.dim() != 3:
        raise ValueError(
            "q, k, v must be (B, N, d_qk), (B, N_k, d_qk), (B, N_k, d_v); got shapes "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    B, N, d_qk = q.shape
    if k.shape[0] != B or v.shape[0] != B or k.shape[2] != d_qk or k.shape[1] != v.shape[1]:
        raise ValueError(
            "q, k, v must be (B, N, d_qk), (B, N_k, d_qk), (B, N_k, d_v); got shapes "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if N == 0 or k.shape[1] == 0 or B == 0:
        raise ValueError(
            "attention needs at least one image, query and key; got shapes "
            f"{tuple(q.shape)}, {tuple(k.shape)}"
        )
    if B > MAX_BATCH:
        raise ValueError(f"the attention kernel takes at most {MAX_BATCH} images per call, got {B}")
    if not (q.dtype == k.dtype == v.dtype) or q.dtype not in CUDA_TYPES:
        raise ValueError(
            f"q, k, v must all be float32 or all bfloat16, got {q.dtype}, {k.dtype}, {v.dtype}"
        )


def _grid(rows: int, batch: int) -> tuple[int, int]:
    return ((rows + THREADS - 1) // THREADS, batch)


@torch.library.custom_op("sagan::attention_forward", mutates_args=(), device_types="cuda")
def attention_forward(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(o, lse)`: o (B, N, d_v) in q's dtype, lse (B, N) float32 (compiled head sizes only)."""
    _check(q, k, v)
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    (B, N, d_qk), N_k, d_v = q.shape, k.shape[1], v.shape[2]
    o = q.new_empty(B, N, d_v)
    lse = q.new_empty(B, N, dtype=torch.float32)
    kernel = get_kernel(SOURCE, kernel_name("attention_forward", q.dtype, d_qk, d_v), q.dtype)
    launch(kernel, _grid(N, B), (THREADS,), q, k, v, o, lse, np.int32(N), np.int32(N_k))
    return o, lse


@attention_forward.register_fake
def _(q, k, v):
    B, N, _ = q.shape
    return q.new_empty(B, N, v.shape[2]), q.new_empty(B, N, dtype=torch.float32)


@torch.library.custom_op("sagan::attention_backward", mutates_args=(), device_types="cuda")
def attention_backward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    o: torch.Tensor,
    lse: torch.Tensor,
    grad_o: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`(dq, dk, dv)` from the forward's inputs, its outputs `o`, `lse` and `grad_o` = dL/do."""
    _check(q, k, v)
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    o, lse, grad_o = o.contiguous(), lse.contiguous(), grad_o.to(q.dtype).contiguous()
    (B, N, d_qk), N_k, d_v = q.shape, k.shape[1], v.shape[2]
    delta = q.new_empty(B, N, dtype=torch.float32)  # D_j = dO_j . o_j
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    n_q, n_k = np.int32(N), np.int32(N_k)
    dq_kernel = get_kernel(
        SOURCE, kernel_name("attention_backward_dq", q.dtype, d_qk, d_v), q.dtype
    )
    launch(dq_kernel, _grid(N, B), (THREADS,), q, k, v, o, grad_o, lse, delta, dq, n_q, n_k)
    dkdv_kernel = get_kernel(
        SOURCE, kernel_name("attention_backward_dkdv", q.dtype, d_qk, d_v), q.dtype
    )
    launch(dkdv_kernel, _grid(N_k, B), (THREADS,), q, k, v, grad_o, lse, delta, dk, dv, n_q, n_k)
    return dq, dk, dv


@attention_backward.register_fake
def _(q, k, v, o, lse, grad_o):
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)


def _setup_context(ctx, inputs, output):
    q, k, v = inputs
    o, lse = output
    ctx.save_for_backward(q, k, v, o, lse)


def _backward(ctx, grad_o, grad_lse):
    # lse is an auxiliary output for this backward; fused_attention never returns it, so
    # nothing downstream depends on it and grad_lse is ignored.
    q, k, v, o, lse = ctx.saved_tensors
    return attention_backward(q, k, v, o, lse, grad_o)


attention_forward.register_autograd(_backward, setup_context=_setup_context)


def fused_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    r"""$o = \operatorname{softmax}(q k^\top) v$ per image, fused: (B, N, d_qk), (B, N_k, d_qk),
    (B, N_k, d_v) -> (B, N, d_v). Differentiable; CUDA float32 or bfloat16 tensors."""
    _check(q, k, v)
    d_qk, d_v = q.shape[2], v.shape[2]
    D_QK, D_V = compiled_head_sizes(d_qk, d_v)
    pad_qk, pad_v = D_QK - d_qk, D_V - d_v
    if pad_qk:
        # zero columns add 0 to every score q_j . k_i
        q, k = F.pad(q, (0, pad_qk)), F.pad(k, (0, pad_qk))
    if pad_v:
        v = F.pad(v, (0, pad_v))  # zero value columns give zero output columns, cut off below
    o, _ = attention_forward(q, k, v)
    return o[..., :d_v] if pad_v else o
