r"""Spectral normalisation by power iteration (Miyato et al. 2018, Algorithm 1), functional.

A weight $W$ of any shape is read as the matrix $W \in \mathbb{R}^{m \times n}$,
$m$ = `W.shape[0]`. From a given $u \in \mathbb{R}^m$, each step

$$v \leftarrow \frac{W^\top u}{\lVert W^\top u \rVert}, \qquad
u \leftarrow \frac{W v}{\lVert W v \rVert},$$

then $\sigma(W) \approx u^\top W v$ and $W_{SN} = W / \sigma(W)$. As in
`torch.nn.utils.parametrizations.spectral_norm`, the iteration runs without autograd and the
norms are clamped below by `eps` ($x / \max(\lVert x \rVert, \epsilon)$), so gradients reach $W$
only through $\sigma = u^\top W v$ with $u, v$ held constant.

The layers (`accelerated.layers.spectral_norm`) use PyTorch's parametrization itself; these
functions are the same equations written out, for the lessons and for checking that module
against `reference.spectral_norm`. That parametrization keeps $v$ and updates $u$ first; one of
its steps from `_v` equals one step here on $W^\top$ from $u$ = `_v`, with $u$ and $v$ swapped
(the same $\sigma$).
"""

import torch
import torch.nn.functional as F

from accelerated.backend import kernel_for


def _check(W: torch.Tensor, u: torch.Tensor, n_steps: int) -> None:
    if W.dim() < 2:
        raise ValueError(
            f"W must have at least 2 dimensions (out, in, ...), got shape {tuple(W.shape)}; a "
            "1-D weight's spectral norm is its Euclidean norm"
        )
    if W.numel() == 0:
        raise ValueError(f"W is empty (shape {tuple(W.shape)}): every dimension must be at least 1")
    if tuple(u.shape) != (W.shape[0],):
        raise ValueError(
            f"u must have shape ({W.shape[0]},), one entry per row of W {tuple(W.shape)}, "
            f"got {tuple(u.shape)}"
        )
    if n_steps < 1:
        raise ValueError(f"n_steps must be at least 1 (v comes from the iteration), got {n_steps}")


def power_iteration(W: torch.Tensor, u: torch.Tensor, n_steps: int = 1, eps: float = 1e-12):
    r"""`(sigma, u, v)`: `n_steps` power-iteration steps from `u`; $\sigma = u^\top W v$.

    u (m,) and v (n,) come back detached; sigma (a 0-d tensor) carries the gradient to W.
    """
    _check(W, u, n_steps)
    W_mat = W.reshape(W.shape[0], -1)  # (m, n)
    kernel = kernel_for("power_iteration_batched", W_mat, u)
    if kernel is not None:
        # The kernel iterates M matrices at once: here M = 1.
        _, u_batch, v_batch = kernel(W_mat.detach()[None], u[None], n_steps, eps)
        u, v = u_batch[0], v_batch[0]
    else:
        with torch.no_grad():
            # --8<-- [start:sn-power-iteration]
            for _ in range(n_steps):
                # v <- W^T u / ||W^T u||
                v = F.normalize(W_mat.T @ u, dim=0, eps=eps)  # (n,)
                # u <- W v / ||W v||
                u = F.normalize(W_mat @ v, dim=0, eps=eps)  # (m,)
            # --8<-- [end:sn-power-iteration]
    # --8<-- [start:sn-sigma]
    # sigma = u^T W v (u, v constants for autograd)
    sigma = u @ (W_mat @ v)  # ()
    # --8<-- [end:sn-sigma]
    return sigma, u, v


def spectral_norm(W: torch.Tensor, u: torch.Tensor, n_steps: int = 1, eps: float = 1e-12):
    r"""`(W_sn, sigma, u, v)` with $W_{SN} = W / \sigma(W)$ of `W`'s shape."""
    sigma, u, v = power_iteration(W, u, n_steps, eps)
    # --8<-- [start:sn-normalise]
    # W_SN = W / sigma(W)
    W_sn = W / sigma  # W.shape
    # --8<-- [end:sn-normalise]
    return W_sn, sigma, u, v
