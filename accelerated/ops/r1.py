r"""The R1 gradient penalty (Mescheder, Geiger and Nowozin, ICML 2018, eq. 9): not in SAGAN.

$$R_1 = \frac{\gamma}{2}\, \mathbb{E}_{x \sim p_\text{data}}\lVert \nabla_x D(x) \rVert^2$$

added to D's loss. It penalises D's slope on the real images only, so near the equilibrium D
stops pushing G around the data: without it, a GAN can circle the equilibrium instead of
converging, which shows as *mode hopping* (the generator trades one part of the data for
another). `optim.r1_gamma` sets $\gamma$ (0: off, the paper's recipe).
"""

import torch

__all__ = ["r1_penalty"]


def r1_penalty(d_real: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    r"""$\mathbb{E}[\lVert \nabla_x D(x) \rVert^2]$ (0-d, without $\gamma / 2$), differentiable
    in D's weights: `d_real` (B,) are D's logits on `real` (B, C, H, W), which requires grad."""
    if not real.requires_grad:
        raise ValueError("real must require grad (real.requires_grad_()) before D's forward")
    # --8<-- [start:r1]
    # row b: dD(x_b)/dx_b (with `model.d_minibatch_std`, D(x_b) also depends on the other
    # images of b's group: the row is then d(sum of the group's logits)/dx_b, as in StyleGAN2)
    (grad,) = torch.autograd.grad(d_real.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()
    # --8<-- [end:r1]
