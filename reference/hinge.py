r"""The hinge adversarial loss, eq. (4) of Zhang et al. 2019, forward and backward.

$D(x, y)$ is the raw, unbounded output (logit) of the discriminator. The discriminator is pushed
to score real images above $+1$ and generated ones below $-1$; beyond that margin it gets no
gradient, so it stops pushing on examples it already separates well:

$$L_D = \mathbb{E}_{(x,y) \sim p_{data}}\big[\max(0,\, 1 - D(x, y))\big]
      + \mathbb{E}_{z \sim p_z,\, y \sim p_{data}}\big[\max(0,\, 1 + D(G(z, y), y))\big],$$

$$L_G = -\,\mathbb{E}_{z \sim p_z,\, y \sim p_{data}}\big[D(G(z, y), y)\big].$$

The expectations are means over the batch. The generator's loss has no margin: it always asks D
to score its samples higher.

At the hinge itself ($D = 1$ for a real logit, $D = -1$ for a fake one) the loss has a kink and
no derivative; the backward functions use the subgradient 0 there, the same choice as
PyTorch's `relu` (whose derivative at 0 is 0), so both give the same gradients.
"""

import numpy as np

from reference._checks import as_finite_array


def hinge_loss_discriminator(d_real, d_fake) -> float:
    r"""The discriminator's hinge loss $L_D$, eq. (4) of Zhang et al. 2019.

    $$L_D = \frac{1}{B_r} \sum_k \max(0, 1 - D_{real,k})
          + \frac{1}{B_f} \sum_k \max(0, 1 + D_{fake,k})$$

    `d_real` (B_r,) are D's logits on real images, `d_fake` (B_f,) on generated ones.
    """
    d_real = as_finite_array("d_real", d_real, ndim=1)
    d_fake = as_finite_array("d_fake", d_fake, ndim=1)
    # --8<-- [start:eq4-d-loss]
    # L_D = mean(max(0, 1 - D(x_real))) + mean(max(0, 1 + D(G(z))))
    loss_real = np.mean(np.maximum(0.0, 1.0 - d_real))
    loss_fake = np.mean(np.maximum(0.0, 1.0 + d_fake))
    L_D = float(loss_real + loss_fake)
    # --8<-- [end:eq4-d-loss]
    return L_D


def hinge_loss_generator(d_fake) -> float:
    r"""The generator's loss $L_G = -\frac{1}{B_f}\sum_k D_{fake,k}$, eq. (4) of Zhang et al. 2019.

    `d_fake` (B_f,) are D's logits on generated images.
    """
    d_fake = as_finite_array("d_fake", d_fake, ndim=1)
    # --8<-- [start:eq4-g-loss]
    # L_G = -mean(D(G(z)))
    L_G = float(-np.mean(d_fake))
    # --8<-- [end:eq4-g-loss]
    return L_G


def hinge_loss_discriminator_backward(d_real, d_fake) -> tuple[np.ndarray, np.ndarray]:
    r"""Gradients of $L_D$ with respect to the logits: `(grad_real, grad_fake)`.

    $$\frac{\partial L_D}{\partial D_{real,k}} = -\frac{[D_{real,k} < 1]}{B_r}, \qquad
    \frac{\partial L_D}{\partial D_{fake,k}} = \frac{[D_{fake,k} > -1]}{B_f},$$

    $[\cdot]$ being 1 when the condition holds and 0 otherwise: exactly at the hinge
    ($D_{real,k} = 1$ or $D_{fake,k} = -1$) the subgradient 0 is used, as PyTorch's `relu`.
    """
    d_real = as_finite_array("d_real", d_real, ndim=1)
    d_fake = as_finite_array("d_fake", d_fake, ndim=1)
    # --8<-- [start:hinge-backward]
    # d/dD_real of mean(max(0, 1 - D_real)): -1/B_r where the margin is not met (D_real < 1)
    grad_real = np.where(d_real < 1.0, -1.0 / d_real.size, 0.0)
    # d/dD_fake of mean(max(0, 1 + D_fake)): +1/B_f where the margin is not met (D_fake > -1)
    grad_fake = np.where(d_fake > -1.0, 1.0 / d_fake.size, 0.0)
    # --8<-- [end:hinge-backward]
    return grad_real, grad_fake


def hinge_loss_generator_backward(d_fake) -> np.ndarray:
    r"""Gradient of $L_G = -\operatorname{mean}_k D_{fake,k}$: $-1/B_f$ for every logit."""
    d_fake = as_finite_array("d_fake", d_fake, ndim=1)
    # dL_G/dD_fake = -1/B_f
    return np.full(d_fake.shape, -1.0 / d_fake.size)
