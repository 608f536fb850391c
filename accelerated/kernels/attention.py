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
compiled ones (zero columns change neither the scores nor the kept outputs); heads larger than
the largest compiled ones are `unsupported` (the op asking falls back to SDPA).

`forward_in_torch` and `backward_in_torch` are the same formulas in plain PyTorch. They run
inside the ops where a kernel cannot be compiled (e.g. bfloat16 without `<cuda_bf16.h>`), with
one warning instead of a crash, and the tests register them as the ops' CPU implementations, so
the whole kernel route (schemas, fakes, autograd, `torch.compile`) runs on a CPU. Every call
that runs PyTorch instead of a kernel counts in `fallbacks`, which the benchmarks read, so that
a row never reports PyTorch's time as the kernel's.
"""

import warnings
from collections import Counter

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
        "call accelerated.ops.self_attention, which falls back to SDPA for such heads"
    )


def unsupported(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> str | None:
    """Why the kernel cannot take these q, k, v (head sizes beyond the compiled ones), or None.
    The backend asks just before the op runs, and a refusal runs PyTorch instead: each one
    counts in `fallbacks`."""
    d_qk, d_v = q.shape[-1], v.shape[-1]
    if d_qk > D_QK_SIZES[-1] or d_v > D_V_SIZES[-1]:
        reason = (
            f"heads d_qk={d_qk}, d_v={d_v}; compiled up to d_qk={D_QK_SIZES[-1]}, "
            f"d_v={D_V_SIZES[-1]}"
        )
        fallbacks[f"the attention kernel does not take {reason}"] += 1
        return reason
    return None


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


def forward_in_torch(q, k, v) -> tuple[torch.Tensor, torch.Tensor]:
    """The forward kernel's `(o, lse)` in PyTorch (stores the (B, N, N_k) scores)."""
    s = q.float() @ k.float().transpose(1, 2)  # s_ji = q_j . k_i: (B, N, N_k)
    lse = torch.logsumexp(s, dim=-1)  # L_j: (B, N)
    o = torch.exp(s - lse[..., None]) @ v.float()  # sum_i P_ji v_i: (B, N, d_v)
    return o.to(q.dtype), lse


def backward_in_torch(q, k, v, o, lse, grad_o) -> tuple[torch.Tensor, ...]:
    """The backward kernels' `(dq, dk, dv)` in PyTorch, with their formulas (P recomputed from
    lse, dS = P (dP - D)); contiguous, in q's dtype."""
    dtype = q.dtype
    q, k, v, o, grad_o = (t.float() for t in (q, k, v, o, grad_o))
    P = torch.exp(q @ k.transpose(1, 2) - lse[..., None])  # (B, N, N_k) = beta
    D = (grad_o * o).sum(-1)  # D_j = dO_j . o_j: (B, N)
    dS = P * (grad_o @ v.transpose(1, 2) - D[..., None])  # (B, N, N_k)
    grads = (dS @ k, dS.transpose(1, 2) @ q, P.transpose(1, 2) @ grad_o)
    return tuple(g.to(dtype).contiguous() for g in grads)


_compile_failures: dict[str, str] = {}  # kernel name -> why it did not compile
# why the kernel did not run -> how many calls ran PyTorch instead, for the whole process: the
# warnings come once, this counts every call, so a benchmark can tell a fallback from the kernel
fallbacks: Counter[str] = Counter()


def _kernel(kernel: str, dtype: torch.dtype, d_qk: int, d_v: int):
    """The compiled kernel, or None where it cannot be compiled (warned once per process)."""
    name = kernel_name(kernel, dtype, d_qk, d_v)
    if name not in _compile_failures:
        try:
            return get_kernel(SOURCE, name, dtype)
        except RuntimeError as error:  # e.g. bfloat16 without <cuda_bf16.h>
            first_line = str(error).strip().splitlines()[0][:300]
            if not _compile_failures:
                warnings.warn(
                    f"the CuPy attention kernel {name} did not compile, so its formulas run in "
                    f"PyTorch (slower, storing the N x N_k scores): {first_line}",
                    RuntimeWarning,
                    stacklevel=2,
                )
            _compile_failures[name] = first_line
    fallbacks[f"{name} did not compile ({_compile_failures[name]})"] += 1
    return None


def _forward(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(o, lse)`: o (B, N, d_v) in q's dtype, lse (B, N) float32 (compiled head sizes only)."""
    _check(q, k, v)
    (B, N, d_qk), N_k, d_v = q.shape, k.shape[1], v.shape[2]
    kernel = _kernel("attention_forward", q.dtype, d_qk, d_v)
    if kernel is None:
        return forward_in_torch(q, k, v)
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    o = q.new_empty(B, N, d_v)
    lse = q.new_empty(B, N, dtype=torch.float32)
    launch(kernel, _grid(N, B), (THREADS,), q, k, v, o, lse, np.int32(N), np.int32(N_k))
    return o, lse


attention_forward = torch.library.custom_op(
    "sagan::attention_forward", _forward, mutates_args=(), device_types="cuda"
)


@attention_forward.register_fake
def _(q, k, v):
    B, N, _ = q.shape
    return q.new_empty(B, N, v.shape[2]), q.new_empty(B, N, dtype=torch.float32)


def _backward_op(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    o: torch.Tensor,
    lse: torch.Tensor,
    grad_o: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`(dq, dk, dv)`, contiguous, from the forward's inputs, its outputs `o`, `lse` and
    `grad_o` = dL/do."""
    _check(q, k, v)
    (B, N, d_qk), N_k, d_v = q.shape, k.shape[1], v.shape[2]
    dq_kernel = _kernel("attention_backward_dq", q.dtype, d_qk, d_v)
    dkdv_kernel = _kernel("attention_backward_dkdv", q.dtype, d_qk, d_v)
    if dq_kernel is None or dkdv_kernel is None:
        return backward_in_torch(q, k, v, o, lse, grad_o)
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    o, lse, grad_o = o.contiguous(), lse.contiguous(), grad_o.to(q.dtype).contiguous()
    delta = q.new_empty(B, N, dtype=torch.float32)  # D_j = dO_j . o_j
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    n_q, n_k = np.int32(N), np.int32(N_k)
    launch(dq_kernel, _grid(N, B), (THREADS,), q, k, v, o, grad_o, lse, delta, dq, n_q, n_k)
    launch(dkdv_kernel, _grid(N_k, B), (THREADS,), q, k, v, grad_o, lse, delta, dk, dv, n_q, n_k)
    return dq, dk, dv


attention_backward = torch.library.custom_op(
    "sagan::attention_backward", _backward_op, mutates_args=(), device_types="cuda"
)


@attention_backward.register_fake
def _(q, k, v, o, lse, grad_o):
    # contiguous like the real op's outputs, whatever q, k, v's strides (Inductor checks them)
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


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
