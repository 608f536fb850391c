r"""Spectral normalisation (Miyato et al. 2018, Algorithm 1), forward and backward.

SAGAN applies it to every convolution, linear layer and embedding of both the generator and the
discriminator. A weight $W$ is replaced by

$$W_{SN} = \frac{W}{\sigma(W)},$$

$\sigma(W)$ its largest singular value, so that $W_{SN}$ has spectral norm 1: a linear layer
$a \mapsto W_{SN} a$ is then 1-Lipschitz. A convolution kernel (out, in, kh, kw) is read as the
matrix (out, in*kh*kw), and that matrix's norm is *not* the convolution's: each input pixel
enters $k_h k_w$ overlapping patches, so a normalised convolution can stretch its input by up to
$\sqrt{k_h k_w}$ (Tsuzuku et al. 2018; about 1.5 is typical for a 3x3 kernel, see lesson 2).
SN bounds every layer's gain by a constant and makes it independent of the scale of $W$; it does
not make a convolutional network exactly 1-Lipschitz.

Computing $\sigma$ exactly (an SVD) at every step would be expensive; instead one step of the
**power iteration** per training step refines left and right singular vector estimates $u, v$:

$$v \leftarrow \frac{W^\top u}{\lVert W^\top u \rVert}, \qquad
u \leftarrow \frac{W v}{\lVert W v \rVert}, \qquad \sigma \approx u^\top W v.$$

The vector $u$ is *persistent*: it is kept from one training step to the next, and because $W$
changes slowly, one step per update is enough to track $\sigma$.

Conventions, as in PyTorch's `torch.nn.utils.spectral_norm` (whose order, $v$ first from the
persistent $u$, is Miyato's Algorithm 1): a norm below `eps` is replaced by `eps`
($x / \max(\lVert x \rVert, \epsilon)$, like `F.normalize`), and in back-propagation $u$ and $v$
are constants. `torch.nn.utils.parametrizations.spectral_norm` runs the same alternation the
other way round (it keeps $v$ and computes $u$ first): one of its steps on $W$ equals one step of
`power_iteration` on $W^\top$ started from its $v$, with the roles of $u$ and $v$ swapped.
"""

import numpy as np

from reference._checks import as_finite_array, check_positive_int, check_shape


def _as_matrix(W) -> np.ndarray:
    """Validate a weight and view it as the (out, rest) matrix whose spectral norm is meant."""
    W = as_finite_array("W", W)
    if W.ndim < 2:
        raise ValueError(
            f"W must have at least 2 dimensions (out, in, ...), got shape {W.shape}; a 1-D "
            "weight's spectral norm is its Euclidean norm"
        )
    return W.reshape(W.shape[0], -1)  # (out, in * kh * kw)


def _check_vector(name: str, a, length: int, hint: str) -> np.ndarray:
    a = as_finite_array(name, a, ndim=1)
    check_shape(name, a, (length,), hint)
    return a


def _normalize(a: np.ndarray, eps: float) -> np.ndarray:
    # a / max(||a||, eps), as torch.nn.functional.normalize
    return a / max(np.linalg.norm(a), eps)


def power_iteration(W, u, n_steps: int = 1, eps: float = 1e-12):
    r"""`n_steps` steps of the power iteration of Algorithm 1 (Miyato et al. 2018): `(sigma, u, v)`.

    $$v \leftarrow \frac{W^\top u}{\lVert W^\top u \rVert}, \qquad
    u \leftarrow \frac{W v}{\lVert W v \rVert}, \qquad \sigma = u^\top W v.$$

    - `W`: the weight, any shape with at least 2 dimensions, read as the matrix
      (W.shape[0], rest).
    - `u` (W.shape[0],): the persistent left singular vector estimate (nonzero).
    - `n_steps` >= 1; `eps`: a norm below `eps` is replaced by `eps`.

    Returns the estimate `sigma` of the largest singular value and the updated `u`, `v`;
    carry `u` over to the next call.
    """
    W_mat = _as_matrix(W)  # (out, rest)
    u = _check_vector("u", u, W_mat.shape[0], "one entry per output row W.shape[0]")
    if not np.any(u):
        raise ValueError("u is the zero vector: start the power iteration from a random nonzero u")
    n_steps = check_positive_int("n_steps", n_steps)
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps!r}")

    # --8<-- [start:sn-power-iteration]
    for _ in range(n_steps):
        # v <- W^T u / ||W^T u||
        v = _normalize(W_mat.T @ u, eps)  # (rest,)
        # u <- W v / ||W v||
        u = _normalize(W_mat @ v, eps)  # (out,)
    # sigma = u^T W v
    sigma = float(u @ W_mat @ v)
    # --8<-- [end:sn-power-iteration]
    return sigma, u, v


def spectral_norm(W, u, n_steps: int = 1, eps: float = 1e-12):
    r"""Spectrally normalised weight $W_{SN} = W / \sigma(W)$ (Miyato et al. 2018).

    Runs `power_iteration(W, u, n_steps, eps)` and returns `(W_sn, sigma, u, v)`, `W_sn` with the
    shape of `W` and `u`, `v` the updated singular vector estimates.
    """
    sigma, u, v = power_iteration(W, u, n_steps, eps)
    if sigma <= 0:
        raise ValueError(
            f"the estimated spectral norm sigma is {sigma}: W is zero (or W v = 0), so W / sigma "
            "is undefined"
        )
    W = np.asarray(W, dtype=np.float64)
    # --8<-- [start:sn-normalise]
    # W_SN = W / sigma(W)
    W_sn = W / sigma
    # --8<-- [end:sn-normalise]
    return W_sn, sigma, u, v


def spectral_norm_backward(dW_sn, W, u, v) -> np.ndarray:
    r"""Gradient through $W_{SN} = W/\sigma$, $\sigma = u^\top W v$, with $u, v$ held constant.

    Since $\partial \sigma / \partial W = u v^\top$,

    $$\frac{\partial L}{\partial W} = \frac{1}{\sigma} \frac{\partial L}{\partial W_{SN}}
    - \frac{\langle \partial L/\partial W_{SN},\, W \rangle}{\sigma^2}\, u v^\top$$

    (the gradient analysis of Miyato et al. 2018), the outer product reshaped to the shape of
    `W`. `dW_sn` has the shape of `W`; `u` and `v` are the vectors `spectral_norm` returned.
    """
    W_mat = _as_matrix(W)  # (out, rest)
    u = _check_vector("u", u, W_mat.shape[0], "one entry per output row W.shape[0]")
    v = _check_vector("v", v, W_mat.shape[1], "one entry per column of W read as (out, rest)")
    dW_sn = as_finite_array("dW_sn", dW_sn)
    check_shape("dW_sn", dW_sn, np.shape(W), "the gradient of W_sn has the shape of W")
    sigma = float(u @ W_mat @ v)
    if sigma <= 0:
        raise ValueError(f"sigma = u^T W v is {sigma}: pass the u, v that spectral_norm returned")

    # --8<-- [start:sn-backward]
    dW_sn_mat = dW_sn.reshape(W_mat.shape)  # (out, rest)
    # dL/dW = dL/dW_SN / sigma - <dL/dW_SN, W> / sigma^2 u v^T
    dW = dW_sn_mat / sigma - np.sum(dW_sn_mat * W_mat) / sigma**2 * np.outer(u, v)
    # --8<-- [end:sn-backward]
    return dW.reshape(np.shape(W))
