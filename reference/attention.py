r"""The self-attention block of SAGAN, eqs. (1)-(3) of Zhang et al. 2019, forward and backward.

A feature map $x$ with $C$ channels and $N = H W$ positions; $x_i \in \mathbb{R}^C$ is the
feature vector at position $i$ (positions flattened row-major, $n = h W + w$). Three 1x1
convolutions, i.e. one matrix applied at every position, give

$$f(x) = W_f x \;\text{(keys)}, \qquad g(x) = W_g x \;\text{(queries)}, \qquad
h(x) = W_h x \;\text{(values)}.$$

**Eq. (1)**, how much output position $j$ attends to position $i$:

$$s_{ij} = f(x_i)^\top g(x_j), \qquad
\beta_{j,i} = \frac{\exp(s_{ij})}{\sum_{i'} \exp(s_{i'j})}.$$

**Eq. (2)**, the attention output, with the output projection $v(\cdot) = W_v \,\cdot$:

$$o_j = W_v \sum_i \beta_{j,i}\, h(x_i).$$

**Eq. (3)**, the residual with a learned scalar $\gamma$ (initialised to 0, so a fresh block is the
identity and the network learns how much non-local evidence to use):

$$y_i = \gamma\, o_i + x_i.$$

There is no $1/\sqrt{d}$ scaling of the scores, unlike a transformer. Arrays store
$\beta$ as `beta[b, j, i]`: one row per query $j$, summing to 1 over the attended $i$.

Two variants (see `attention_dims`):

- **paper**: $f, g, h$ map $C \to C/8$, $W_v$ maps $C/8 \to C$; every position is attended.
- **official code** (`sn_non_local_block_sim`): $f, g$ map $C \to C/8$, $h$ maps $C \to C/2$,
  $W_v$ maps $C/2 \to C$; keys $f(x)$ and values $h(x)$ are 2x2 max-pooled (stride 2) after the
  1x1 convolution, so only $N_k = N/4$ positions are attended. The pooling saves compute.

The backward pass is written by hand (`self_attention_backward`) so that a student can check every
step against the chain rule; the tests compare it with finite differences.
"""

import numpy as np

from reference._checks import as_finite_array, as_finite_scalar, check_shape

VARIANTS = ("paper", "official")


def attention_dims(C: int, variant: str = "official") -> tuple[int, int, bool]:
    r"""Channel sizes of the block: returns `(c_qk, c_v, pool)`.

    `c_qk` is the size of $f(x)$ and $g(x)$ ($C/8$ in both variants), `c_v` the size of $h(x)$
    ($C/8$ in the paper, $C/2$ in the official code), `pool` whether keys and values are 2x2
    max-pooled (official code only).
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if isinstance(C, bool) or not isinstance(C, int | np.integer) or C < 8 or C % 8 != 0:
        raise ValueError(
            f"the number of channels C must be a positive multiple of 8 (the query/key size is "
            f"C/8), got C={C!r}"
        )
    if variant == "paper":
        return C // 8, C // 8, False
    return C // 8, C // 2, True


def max_pool_2x2(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""2x2 max-pool with stride 2 of `z` (B, c, H, W), H and W even.

    Returns the pooled map (B, c, H/2, W/2) and `argmax` (B, c, H/2, W/2): the index 0..3 of the
    maximum inside each window, the window read row-major ((0,0), (0,1), (1,0), (1,1)).

    Ties: `np.argmax` picks the *first* maximum in that order, and so does PyTorch's
    `max_pool2d` (its kernels scan the window row-major and replace the running maximum only
    on a strictly greater value), so both route the gradient to the same element.
    """
    B, c, H, W = z.shape
    # (B, c, H/2, 2, W/2, 2) -> (B, c, H/2, W/2, 4): the last axis is one 2x2 window, row-major
    windows = z.reshape(B, c, H // 2, 2, W // 2, 2).transpose(0, 1, 2, 4, 3, 5)
    windows = windows.reshape(B, c, H // 2, W // 2, 4)
    argmax = np.argmax(windows, axis=-1)  # (B, c, H/2, W/2)
    pooled = np.take_along_axis(windows, argmax[..., None], axis=-1)[..., 0]
    return pooled, argmax


def max_pool_2x2_backward(d_pooled: np.ndarray, argmax: np.ndarray) -> np.ndarray:
    r"""Gradient of `max_pool_2x2`: each window's gradient goes to its maximum, zero elsewhere.

    $\partial\,\mathrm{pooled} / \partial z$ is 1 at the (first) maximum of the window and 0 at
    the other three elements. `d_pooled` and `argmax` are (B, c, H/2, W/2); returns (B, c, H, W).
    """
    B, c, H2, W2 = d_pooled.shape
    d_windows = np.zeros((B, c, H2, W2, 4))
    np.put_along_axis(d_windows, argmax[..., None], d_pooled[..., None], axis=-1)
    # undo the window layout of max_pool_2x2: (B, c, H/2, W/2, 2, 2) -> (B, c, H, W)
    d_windows = d_windows.reshape(B, c, H2, W2, 2, 2).transpose(0, 1, 2, 4, 3, 5)
    return d_windows.reshape(B, c, 2 * H2, 2 * W2)


def _validate(x, W_f, W_g, W_h, W_v, gamma, pool):
    """Convert the block's inputs to float64 arrays and check that their shapes fit together."""
    x = as_finite_array("x", x, ndim=4)
    C = x.shape[1]
    W_f = as_finite_array("W_f", W_f, ndim=2)
    W_g = as_finite_array("W_g", W_g, ndim=2)
    W_h = as_finite_array("W_h", W_h, ndim=2)
    W_v = as_finite_array("W_v", W_v, ndim=2)
    c_qk, c_v = W_f.shape[0], W_h.shape[0]
    check_shape("W_f", W_f, (c_qk, C), f"(c_qk, C) with C={C} channels of x")
    check_shape("W_g", W_g, (c_qk, C), "(c_qk, C): queries and keys must have the size of W_f's")
    check_shape("W_h", W_h, (c_v, C), f"(c_v, C) with C={C} channels of x")
    check_shape("W_v", W_v, (C, c_v), "(C, c_v): it maps the values h(x) back to C channels")
    gamma = as_finite_scalar("gamma", gamma)
    H, W = x.shape[2:]
    if pool and (H % 2 or W % 2):
        raise ValueError(
            f"pool=True needs an even height and width for the 2x2 max-pool, got H={H}, W={W}"
        )
    return x, W_f, W_g, W_h, W_v, gamma


def _forward(x, W_f, W_g, W_h, W_v, gamma, pool):
    r"""Eqs. (1)-(3) on validated float64 inputs; returns every intermediate the backward needs."""
    B, C, H, W = x.shape
    N = H * W
    X = x.reshape(B, C, N)  # (B, C, N): column n is the feature vector x_n
    c_qk, c_v = W_f.shape[0], W_h.shape[0]

    # --8<-- [start:eq1-scores]
    # f(x) = W_f x (keys) and g(x) = W_g x (queries): a 1x1 convolution is a matrix product
    f = W_f @ X  # (B, c_qk, N)
    g = W_g @ X  # (B, c_qk, N)
    f_argmax = None
    if pool:  # official code: keys 2x2 max-pooled after the 1x1 convolution
        f, f_argmax = max_pool_2x2(f.reshape(B, c_qk, H, W))
        f = f.reshape(B, c_qk, -1)  # (B, c_qk, N_k), N_k = N/4
    # s_ij = f(x_i)^T g(x_j), stored as s[b, j, i]: one row per query j
    s = np.swapaxes(g, 1, 2) @ f  # (B, N, N_k)
    # --8<-- [end:eq1-scores]

    # --8<-- [start:eq1-softmax]
    # beta_{j,i} = exp(s_ij - max_i' s_i'j) / sum_i exp(s_ij - max_i' s_i'j); subtracting the row
    # maximum changes nothing mathematically but keeps every exponent <= 0, so exp cannot overflow
    e = np.exp(s - s.max(axis=-1, keepdims=True))  # (B, N, N_k)
    beta = e / e.sum(axis=-1, keepdims=True)  # (B, N, N_k), rows sum to 1
    # --8<-- [end:eq1-softmax]

    # --8<-- [start:eq2-output]
    # h(x) = W_h x (values), pooled like the keys in the official code
    h = W_h @ X  # (B, c_v, N)
    h_argmax = None
    if pool:
        h, h_argmax = max_pool_2x2(h.reshape(B, c_v, H, W))
        h = h.reshape(B, c_v, -1)  # (B, c_v, N_k)
    # a_j = sum_i beta_{j,i} h(x_i): the attention-weighted values for every query j
    a = h @ np.swapaxes(beta, 1, 2)  # (B, c_v, N)
    # o_j = W_v a_j
    o = W_v @ a  # (B, C, N)
    # --8<-- [end:eq2-output]

    # --8<-- [start:eq3-residual]
    # y_i = gamma o_i + x_i
    y = gamma * o + X  # (B, C, N)
    # --8<-- [end:eq3-residual]

    return {
        "X": X, "f": f, "g": g, "h": h, "f_argmax": f_argmax, "h_argmax": h_argmax,
        "beta": beta, "a": a, "o": o, "y": y.reshape(B, C, H, W),
    }  # fmt: skip


def self_attention(x, W_f, W_g, W_h, W_v, gamma, pool: bool = False):
    r"""The self-attention block, eqs. (1)-(3) of Zhang et al. 2019: returns `(y, beta)`.

    $$\beta_{j,i} = \operatorname{softmax}_i\big(f(x_i)^\top g(x_j)\big), \quad
    o_j = W_v \sum_i \beta_{j,i}\, h(x_i), \quad y_j = \gamma\, o_j + x_j.$$

    - `x` (B, C, H, W): the input feature map.
    - `W_f`, `W_g` (c_qk, C): key map $f$ and query map $g$; `W_h` (c_v, C): value map $h$;
      `W_v` (C, c_v): output map $v$. `attention_dims(C, variant)` gives c_qk and c_v.
    - `gamma`: the scalar $\gamma$ of eq. (3).
    - `pool`: 2x2 max-pool of $f(x)$ and $h(x)$ (official code), attending $N_k = N/4$ positions.

    Returns `y` (B, C, H, W) and the attention map `beta` (B, N, N_k), `beta[b, j, i]` the weight
    of attended position $i$ for query position $j$ (each row sums to 1).
    """
    cache = _forward(*_validate(x, W_f, W_g, W_h, W_v, gamma, pool), pool)
    return cache["y"], cache["beta"]


def self_attention_backward(dy, x, W_f, W_g, W_h, W_v, gamma, pool: bool = False) -> dict:
    r"""Gradients of a scalar loss $L$ through eqs. (1)-(3), given `dy` $= \partial L/\partial y$.

    Recomputes the forward pass, then applies the chain rule equation by equation, backwards:

    $$\frac{\partial L}{\partial \gamma} = \sum_j \Big\langle \frac{\partial L}{\partial y_j},
    o_j \Big\rangle, \qquad
    \frac{\partial L}{\partial s_{ij}} = \beta_{j,i}\Big(\frac{\partial L}{\partial \beta_{j,i}}
    - \sum_{i'} \beta_{j,i'} \frac{\partial L}{\partial \beta_{j,i'}}\Big)
    \;\text{(softmax)},$$

    and through the max-pool each window's gradient goes to its (first) maximum.
    Returns a dict with keys `"x"`, `"W_f"`, `"W_g"`, `"W_h"`, `"W_v"`, `"gamma"`, each the
    gradient with the shape of that argument (`"gamma"` a float).
    """
    x, W_f, W_g, W_h, W_v, gamma = _validate(x, W_f, W_g, W_h, W_v, gamma, pool)
    dy = as_finite_array("dy", dy, ndim=4)
    check_shape("dy", dy, x.shape, "the gradient of y has the shape of y, i.e. of x")
    cache = _forward(x, W_f, W_g, W_h, W_v, gamma, pool)
    X, f, g, h, beta, a, o = (cache[k] for k in ("X", "f", "g", "h", "beta", "a", "o"))
    B, C, H, W = x.shape
    dY = dy.reshape(B, C, H * W)  # (B, C, N)

    # --8<-- [start:attention-backward]
    # eq. (3), y = gamma o + x:  dL/dgamma = sum <dy, o>,  dL/do = gamma dy,  dL/dx gets dy
    d_gamma = float(np.sum(dY * o))
    d_o = gamma * dY  # (B, C, N)
    dX = dY.copy()  # (B, C, N)

    # eq. (2), o = W_v a:  dL/dW_v = sum_b do a^T,  dL/da = W_v^T do
    d_W_v = np.sum(d_o @ np.swapaxes(a, 1, 2), axis=0)  # (C, c_v)
    d_a = W_v.T @ d_o  # (B, c_v, N)
    # a_j = sum_i beta_{j,i} h_i:  dL/dh_i = sum_j beta_{j,i} da_j,  dL/dbeta_{j,i} = <da_j, h_i>
    d_h = d_a @ beta  # (B, c_v, N_k)
    d_beta = np.swapaxes(d_a, 1, 2) @ h  # (B, N, N_k)

    # eq. (1), softmax over i in each row j:  ds_ij = beta_ji (dbeta_ji - sum_i' beta_ji' dbeta_ji')
    d_s = beta * (d_beta - np.sum(beta * d_beta, axis=-1, keepdims=True))  # (B, N, N_k)
    # s_ij = f_i^T g_j:  dL/dg_j = sum_i ds_ij f_i,  dL/df_i = sum_j ds_ij g_j
    d_g = f @ np.swapaxes(d_s, 1, 2)  # (B, c_qk, N)
    d_f = g @ d_s  # (B, c_qk, N_k)

    # through the 2x2 max-pool (official code): back to all N positions, routed to each maximum
    if pool:
        d_f = max_pool_2x2_backward(d_f.reshape(B, -1, H // 2, W // 2), cache["f_argmax"])
        d_h = max_pool_2x2_backward(d_h.reshape(B, -1, H // 2, W // 2), cache["h_argmax"])
        d_f, d_h = d_f.reshape(B, -1, H * W), d_h.reshape(B, -1, H * W)  # (B, c, N)

    # the 1x1 convolutions f = W_f x, g = W_g x, h = W_h x:
    # dL/dW = sum_b d(out) x^T,  and x collects W^T d(out) from all three maps
    d_W_f = np.sum(d_f @ np.swapaxes(X, 1, 2), axis=0)  # (c_qk, C)
    d_W_g = np.sum(d_g @ np.swapaxes(X, 1, 2), axis=0)  # (c_qk, C)
    d_W_h = np.sum(d_h @ np.swapaxes(X, 1, 2), axis=0)  # (c_v, C)
    dX += W_f.T @ d_f + W_g.T @ d_g + W_h.T @ d_h  # (B, C, N)
    # --8<-- [end:attention-backward]

    return {
        "x": dX.reshape(B, C, H, W), "W_f": d_W_f, "W_g": d_W_g, "W_h": d_W_h, "W_v": d_W_v,
        "gamma": d_gamma,
    }  # fmt: skip
