r"""The self-attention block of SAGAN, eqs. (1)-(3), in PyTorch (autograd gives the backward).

With $f$ the key map, $g$ the query map, $h$ the value map and $v$ the output map (1x1
convolutions, i.e. matrices acting on each position's channel vector $x_i$):

$$s_{ij} = f(x_i)^\top g(x_j), \qquad
\beta_{j,i} = \frac{\exp s_{ij}}{\sum_{i'} \exp s_{i'j}} \quad (1)$$

$$o_j = v\Big(\sum_i \beta_{j,i}\, h(x_i)\Big) \quad (2), \qquad
y_j = \gamma\, o_j + x_j \quad (3)$$

No $1/\sqrt{d}$ scaling of the scores. With `pool=True` (the official code) the keys $f(x)$ and
values $h(x)$ are 2x2 max-pooled (stride 2) after their 1x1 convolution, so there are
$N_k = N/4$ keys. Positions are flattened row-major, $n = hW + w$, as in `reference.attention`.

Three routes compute eq. (1) and eq. (2)'s sum over keys (`ROUTES`):

- `"readable"`: the code below, which stores the $N \times N_k$ matrix $\beta$; the one the
  tests compare with the NumPy reference, and the only one that returns $\beta$;
- `"sdpa"`: `torch.nn.functional.scaled_dot_product_attention` (with `scale=1.0`) on
  contiguous q, k, v, fused where a backend takes them, never storing $\beta$;
- `"kernel"`: the registered kernel (`accelerated.backend`, the CuPy one on CUDA); heads it was
  not compiled for fall back to SDPA with one warning.

By default SDPA runs on CUDA and the readable path elsewhere; the kernel runs only where chosen
(`force_backend("cupy")`, `SAGAN_BACKEND=cupy`). `force_route` forces a route on any device
(CI runs each on a CPU); asking for beta always takes the readable path.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from accelerated.backend import kernel_for
from reference.attention import attention_dims  # one table of channel sizes for both packages

__all__ = ["ROUTES", "attention_dims", "force_route", "self_attention"]

ROUTES = ("readable", "sdpa", "kernel")
# Set by force_route; a plain global (not a ContextVar) that Dynamo traces and guards.
_forced_route: str | None = None


@contextmanager
def force_route(route: str | None) -> Iterator[None]:
    """Within the block, compute attention by `route` (one of `ROUTES`); None: the default."""
    if route is not None and route not in ROUTES:
        raise ValueError(f"unknown attention route {route!r}: use one of {ROUTES} or None")
    global _forced_route
    before, _forced_route = _forced_route, route
    try:
        yield
    finally:
        _forced_route = before


def _check_shapes(x, W_f, W_g, W_h, W_v, gamma, pool) -> None:
    """Raise one ValueError naming the argument whose shape does not fit the others."""
    if x.dim() != 4:
        raise ValueError(f"x must have 4 dimensions (B, C, H, W), got shape {tuple(x.shape)}")
    for name, W in (("W_f", W_f), ("W_g", W_g), ("W_h", W_h), ("W_v", W_v)):
        if W.dim() != 2:
            raise ValueError(f"{name} must have 2 dimensions (out, in), got {tuple(W.shape)}")
    C = x.shape[1]
    c_qk, c_v = W_f.shape[0], W_h.shape[0]
    expected = {
        "W_f": ((c_qk, C), f"(c_qk, C) with C={C} channels of x"),
        "W_g": ((c_qk, C), "(c_qk, C): queries and keys must have the size of W_f's"),
        "W_h": ((c_v, C), f"(c_v, C) with C={C} channels of x"),
        "W_v": ((C, c_v), "(C, c_v): it maps the values h(x) back to C channels"),
    }
    for W, (name, (shape, hint)) in zip((W_f, W_g, W_h, W_v), expected.items(), strict=True):
        if tuple(W.shape) != shape:
            raise ValueError(f"{name} has shape {tuple(W.shape)}, expected {shape} ({hint})")
    if isinstance(gamma, torch.Tensor) and gamma.numel() != 1:
        raise ValueError(f"gamma must be a scalar, got shape {tuple(gamma.shape)}")
    H, W = x.shape[2:]
    if pool and (H % 2 or W % 2):
        raise ValueError(
            f"pool=True needs an even height and width for the 2x2 max-pool, got H={H}, W={W}"
        )


def _conv1x1(W: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution: the (out, in) matrix `W` applied at every position of `x`."""
    return torch.einsum("oc,bchw->bohw", W, x)


def _tokens(feature_map: torch.Tensor) -> torch.Tensor:
    """(B, c, H, W) -> (B, H*W, c), positions row-major."""
    return feature_map.flatten(2).transpose(1, 2)


def _sdpa(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """sum_i softmax_i(q_j . k_i) v_i by PyTorch's fused attention, without 1/sqrt(d) scaling.
    Contiguous inputs: the fused backends refuse a last dimension with stride != 1 (a `_tokens`
    view has one) and SDPA would silently run its math backend, storing the scores."""
    q, k, v = (t.contiguous()[:, None] for t in (query, key, value))  # (B, 1, N, c): one head
    return F.scaled_dot_product_attention(q, k, v, scale=1.0)[:, 0]  # (B, N, c_v)


def _fused(query, key, value):
    """The function computing sum_i beta_ji v_i without beta (a kernel or `_sdpa`), or None for
    the readable path."""
    route = _forced_route
    if route == "readable":
        return None
    if route in (None, "kernel"):
        kernel = kernel_for("self_attention", query, key, value, require=route == "kernel")
        if kernel is not None:
            return kernel
        if route == "kernel":
            return _sdpa  # the kernel does not take these heads (kernel_for warned)
    return _sdpa if route == "sdpa" or query.is_cuda else None


def self_attention(x, W_f, W_g, W_h, W_v, gamma, pool=False, return_attention=False):
    r"""$y = \gamma\, o + x$ for x (B, C, H, W); returns y, or (y, beta) with `return_attention`.

    W_f (c_qk, C) keys $f$, W_g (c_qk, C) queries $g$, W_h (c_v, C) values $h$, W_v (C, c_v)
    output $v$, gamma a scalar (float or tensor). beta (B, N, N_k): `beta[b, j, i]` is the weight
    of key i for query j; its rows sum to 1.
    """
    _check_shapes(x, W_f, W_g, W_h, W_v, gamma, pool)
    B, C, H, W = x.shape
    # --8<-- [start:projections]
    # f(x) = W_f x (keys), h(x) = W_h x (values), g(x) = W_g x (queries): 1x1 convolutions,
    # i.e. one matrix product on each position's channel vector. (This order of the three is
    # kept: it fixes the order in which autograd sums their gradients into x, so runs stay
    # bitwise reproducible across versions.)
    keys = _conv1x1(W_f, x)  # f(x): (B, c_qk, H, W)
    values = _conv1x1(W_h, x)  # h(x): (B, c_v, H, W)
    if pool:  # official code: keys and values 2x2 max-pooled after the 1x1 convolution
        keys = F.max_pool2d(keys, 2)  # (B, c_qk, H/2, W/2)
        values = F.max_pool2d(values, 2)  # (B, c_v, H/2, W/2)
    query = _tokens(_conv1x1(W_g, x))  # g(x_j) as rows: (B, N, c_qk)
    key = _tokens(keys)  # f(x_i) as rows: (B, N_k, c_qk), N_k = N/4 if pooled
    value = _tokens(values)  # h(x_i) as rows: (B, N_k, c_v)
    # --8<-- [end:projections]
    fused = None if return_attention else _fused(query, key, value)  # none returns beta
    if fused is not None:
        # Fast path: eq. (1) fused into eq. (2)'s sum, beta never stored
        o = fused(query, key, value) @ W_v.T  # (B, N, c_v) -> (B, N, C)
    else:
        # --8<-- [start:eq1-scores]
        # s_ij = f(x_i)^T g(x_j), stored as s[b, j, i]: row j = query, column i = key
        s = query @ key.transpose(1, 2)  # (B, N, N_k)
        # --8<-- [end:eq1-scores]
        # --8<-- [start:eq1-softmax]
        # beta_{j,i} = exp(s_ij) / sum_i' exp(s_i'j): softmax over the keys i
        beta = torch.softmax(s, dim=-1)  # (B, N, N_k)
        # --8<-- [end:eq1-softmax]
        # --8<-- [start:eq2-output]
        # o_j = v(sum_i beta_{j,i} h(x_i)),  v(.) = W_v (.)
        o = (beta @ value) @ W_v.T  # (B, N, c_v) -> (B, N, C)
        # --8<-- [end:eq2-output]
    o = o.transpose(1, 2).reshape(B, C, H, W)  # (B, C, H, W)
    # --8<-- [start:eq3-residual]
    # y_j = gamma o_j + x_j
    y = gamma * o + x  # (B, C, H, W)
    # --8<-- [end:eq3-residual]
    if return_attention:
        return y, beta
    return y
