r"""The hinge adversarial loss, eq. (4) of SAGAN, in PyTorch (autograd gives the backward).

$$L_D = \mathbb{E}\big[\max(0, 1 - D(x, y))\big] + \mathbb{E}\big[\max(0, 1 + D(G(z), y))\big],
\qquad L_G = -\mathbb{E}\big[D(G(z), y)\big]$$

$D$ is the raw, unbounded discriminator output; the expectations are means over the batch.
"""

import torch
import torch.nn.functional as F

from accelerated.backend import kernel_for


def _check_logits(name: str, d: torch.Tensor) -> None:
    """Raise ValueError unless `d` is a non-empty (B,) vector of logits."""
    if d.dim() != 1:
        raise ValueError(f"{name} must have 1 dimension (B,), got shape {tuple(d.shape)}")
    if d.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(d.shape)}): pass at least one logit")


def hinge_loss_discriminator(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    r"""$L_D$, the mean of $\max(0, 1 - D_{real})$ plus that of $\max(0, 1 + D_{fake})$ (0-d)."""
    _check_logits("d_real", d_real)
    _check_logits("d_fake", d_fake)
    kernel = kernel_for("hinge_loss_discriminator", d_real, d_fake)
    if kernel is not None:
        return kernel(d_real, d_fake)
    # --8<-- [start:eq4-d-loss]
    # L_D = E[max(0, 1 - D(x, y))] + E[max(0, 1 + D(G(z), y))]
    return F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()
    # --8<-- [end:eq4-d-loss]


def hinge_loss_generator(d_fake: torch.Tensor) -> torch.Tensor:
    r"""$L_G = -\mathbb{E}[D(G(z), y)]$ (a 0-d tensor)."""
    _check_logits("d_fake", d_fake)
    kernel = kernel_for("hinge_loss_generator", d_fake)
    if kernel is not None:
        return kernel(d_fake)
    # --8<-- [start:eq4-g-loss]
    # L_G = -E[D(G(z), y)]
    return -d_fake.mean()
    # --8<-- [end:eq4-g-loss]
