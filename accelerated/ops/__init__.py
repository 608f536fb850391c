"""One function per equation, under the names `reference/` uses; each consults
`accelerated.backend.kernel_for` first and otherwise runs plain PyTorch; and the R1 penalty, a
regulariser from outside the paper (`optim.r1_gamma`)."""

from accelerated.ops.attention import ROUTES, attention_dims, force_route, self_attention
from accelerated.ops.hinge import hinge_loss_discriminator, hinge_loss_generator
from accelerated.ops.r1 import r1_penalty
from accelerated.ops.spectral_norm import power_iteration, spectral_norm

__all__ = [
    "ROUTES",
    "attention_dims",
    "force_route",
    "hinge_loss_discriminator",
    "hinge_loss_generator",
    "power_iteration",
    "r1_penalty",
    "self_attention",
    "spectral_norm",
]
