r"""Power iteration for many spectrally normalised weights in one launch (`power_iteration.cu`).

For each matrix $W_b \in \mathbb{R}^{m_b \times n_b}$ (a weight reshaped to
(`W.shape[0]`, -1)) and its persistent $u_b$, `n_steps` steps of

$$v \leftarrow \frac{W^\top u}{\max(\lVert W^\top u \rVert, \epsilon)}, \qquad
u \leftarrow \frac{W v}{\max(\lVert W v \rVert, \epsilon)}, \qquad \sigma = u^\top W v,$$

in the order of Miyato et al.'s Algorithm 1 (v from u, then u from v), as `accelerated.ops` and
`reference/` do, one CUDA block per matrix and one launch for all of them.
`torch.nn.utils.parametrizations.spectral_norm` goes the other way round (u from its stored v
first): one of its steps is one step here on $W^\top$ from $u$ = its `_v`, with u and v swapped
(the same $\sigma$). Like PyTorch's iteration this runs outside autograd: the returned
$\sigma$ carries no gradient; compute $\sigma = u^\top W v$ with autograd from the returned
$u, v$ (as `accelerated.ops.spectral_norm` does) to differentiate through it.
"""

import functools
from collections.abc import Sequence

import numpy as np
import torch

from accelerated.kernels.cupy_module import get_kernel, launch

SOURCE = "power_iteration.cu"
THREADS = 256


def _check(weights: Sequence[torch.Tensor], u: torch.Tensor, n_steps: int) -> None:
    if len(weights) == 0:
        raise ValueError("power_iteration_batched needs at least one weight")
    for index, W in enumerate(weights):
        if W.dim() != 2 or W.numel() == 0 or W.dtype != torch.float32:
            raise ValueError(
                f"weight {index} must be a non-empty 2-d float32 matrix (reshape a conv kernel "
                f"to (out, -1)), got shape {tuple(W.shape)} and {W.dtype}"
            )
    rows = sum(W.shape[0] for W in weights)
    if u.dim() != 1 or u.shape[0] != rows or u.dtype != torch.float32:
        raise ValueError(
            f"u must be the float32 u vectors of all weights end to end, ({rows},), "
            f"got shape {tuple(u.shape)} and {u.dtype}"
        )
    if n_steps < 1:
        raise ValueError(f"n_steps must be at least 1 (v comes from the iteration), got {n_steps}")


@functools.lru_cache(maxsize=64)
def _tables(addresses: tuple[int, ...], rows: tuple[int, ...], cols: tuple[int, ...],
            device: torch.device) -> torch.Tensor:
    """The kernel's three tables end to end on `device`: the weights' addresses (M), the row
    offsets (M + 1) and the column offsets (M + 1). Built once per set of weights: a model's SN
    weights keep their addresses, so after the first call no step copies them from the host
    (each such copy from pageable memory is a wait)."""
    table = [*addresses, *np.cumsum([0, *rows]).tolist(), *np.cumsum([0, *cols]).tolist()]
    return torch.tensor(table, dtype=torch.int64).to(device)


def tables(weights: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`(addresses, row_offsets, col_offsets)` of contiguous `weights`, on their device."""
    M, device = len(weights), weights[0].device
    table = _tables(tuple(W.data_ptr() for W in weights), tuple(W.shape[0] for W in weights),
                    tuple(W.shape[1] for W in weights), device)
    if device.type == "cuda":  # the allocator must not hand its memory on while a launch reads it
        table.record_stream(torch.cuda.current_stream(device))
    return table[:M], table[M : 2 * M + 1], table[2 * M + 1 :]


def _packed(
    weights: list[torch.Tensor], u: torch.Tensor, n_steps: int, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`(sigma (M,), u (sum m_b,), v (sum n_b,))` for M matrices; u in and out packed end to end."""
    _check(weights, u, n_steps)
    weights = [W.contiguous() for W in weights]  # the kernel reads W_b row-major
    addresses, row_offsets, col_offsets = tables(weights)
    u_out = torch.empty_like(u)
    v_out = u.new_empty(sum(W.shape[1] for W in weights))
    sigma = u.new_empty(len(weights))
    kernel = get_kernel(SOURCE, "power_iteration_batched")
    launch(
        kernel,
        (len(weights),),
        (THREADS,),
        addresses,
        row_offsets,
        col_offsets,
        u.contiguous(),
        u_out,
        v_out,
        sigma,
        np.int32(n_steps),
        np.float32(eps),
    )
    # `weights` (the contiguous copies, if any) must outlive the kernel: PyTorch's caching
    # allocator only reuses their memory for work queued later on this same stream.
    return sigma, u_out, v_out


power_iteration_packed = torch.library.custom_op(
    "sagan::power_iteration_packed", _packed, mutates_args=(), device_types="cuda"
)


@power_iteration_packed.register_fake
def _(weights, u, n_steps, eps):
    columns = sum(W.shape[1] for W in weights)
    return u.new_empty(len(weights)), torch.empty_like(u), u.new_empty(columns)


def power_iteration_many(
    weights: Sequence[torch.Tensor],
    us: Sequence[torch.Tensor],
    n_steps: int = 1,
    eps: float = 1e-12,
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """`(sigma (M,), [u_b], [v_b])` for weights of any shapes (each read as (shape[0], -1))."""
    matrices = [W.detach().reshape(W.shape[0], -1) for W in weights]
    if len(us) != len(matrices) or not matrices:
        raise ValueError(
            f"got {len(matrices)} weights and {len(us)} u vectors: pass one u per weight, "
            "at least one"
        )
    u = torch.cat([u_b.detach().reshape(-1) for u_b in us])
    _check(matrices, u, n_steps)  # before dispatch: a clear error on any device
    sigma, u_out, v_out = power_iteration_packed(matrices, u, n_steps, eps)
    rows = [W.shape[0] for W in matrices]
    cols = [W.shape[1] for W in matrices]
    return sigma, list(u_out.split(rows)), list(v_out.split(cols))


def power_iteration_batched(W: torch.Tensor, u: torch.Tensor, n_steps: int = 1, eps: float = 1e-12):
    """The kernel for the op "power_iteration_batched": M matrices of one shape,
    W (M, m, n) and u (M, m) -> `(sigma (M,), u (M, m), v (M, n))`, all without gradient."""
    if W.dim() != 3 or u.dim() != 2 or u.shape != W.shape[:2]:
        raise ValueError(
            f"W must be (M, m, n) and u (M, m), got shapes {tuple(W.shape)} and {tuple(u.shape)}"
        )
    M, m, n = W.shape
    W = W.detach().contiguous()
    sigma, u_out, v_out = power_iteration_packed(
        list(W.unbind(0)), u.detach().reshape(-1), n_steps, eps
    )
    return sigma, u_out.view(M, m), v_out.view(M, n)
