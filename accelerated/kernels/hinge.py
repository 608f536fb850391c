r"""The hinge loss, eq. (4), as PyTorch custom ops backed by `hinge.cu`.

$$L_D = \tfrac{1}{n_r}\sum_i \max(0, 1 - d^{real}_i) + \tfrac{1}{n_f}\sum_j \max(0, 1 + d^{fake}_j),
\qquad L_G = -\tfrac{1}{n_f}\sum_j d^{fake}_j$$

The pattern every kernel module here follows, in its smallest form:

1. a `torch.library.custom_op` for the forward that launches a CuPy kernel;
2. `register_fake`, so `torch.compile` and meta tensors know the output's shape and dtype;
3. a second custom op for the backward, and `register_autograd` tying the two together.

The logits are computed on in float32 (they are a few hundred numbers); the loss comes back
in the logits' dtype, like the PyTorch path.
"""

import numpy as np
import torch

from accelerated.kernels.cupy_module import get_kernel, launch

SOURCE = "hinge.cu"
THREADS = 256  # one block: the logits of a batch are few


def _flat(name: str, d: torch.Tensor) -> torch.Tensor:
    if d.numel() == 0:
        raise ValueError(f"{name} is empty: pass the discriminator's logits for at least one image")
    if d.dtype != torch.float32:
        raise ValueError(f"{name} must be float32 for the hinge kernel, got {d.dtype}")
    return d.contiguous().reshape(-1)


@torch.library.custom_op("sagan::hinge_d_forward", mutates_args=(), device_types="cuda")
def hinge_d_forward(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """$L_D$ (a 0-d float32 tensor) of float32 logits."""
    real, fake = _flat("d_real", d_real), _flat("d_fake", d_fake)
    loss = real.new_empty(())
    kernel = get_kernel(SOURCE, "hinge_discriminator_forward")
    launch(
        kernel, (1,), (THREADS,), real, np.int32(real.numel()), fake, np.int32(fake.numel()), loss
    )
    return loss


@hinge_d_forward.register_fake
def _(d_real, d_fake):
    return d_real.new_empty(())


@torch.library.custom_op("sagan::hinge_d_backward", mutates_args=(), device_types="cuda")
def hinge_d_backward(
    d_real: torch.Tensor, d_fake: torch.Tensor, grad_loss: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The gradients of the logits, given $g = \partial L / \partial L_D$ (0-d)."""
    real, fake = _flat("d_real", d_real), _flat("d_fake", d_fake)
    grad_real, grad_fake = torch.empty_like(real), torch.empty_like(fake)
    kernel = get_kernel(SOURCE, "hinge_discriminator_backward")
    launch(
        kernel,
        (1,),
        (THREADS,),
        real,
        np.int32(real.numel()),
        fake,
        np.int32(fake.numel()),
        grad_loss.float().contiguous(),
        grad_real,
        grad_fake,
    )
    return grad_real.view(d_real.shape), grad_fake.view(d_fake.shape)


@hinge_d_backward.register_fake
def _(d_real, d_fake, grad_loss):
    return d_real.new_empty(d_real.shape), d_fake.new_empty(d_fake.shape)  # contiguous, as real


def _d_setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _d_backward(ctx, grad_loss):
    d_real, d_fake = ctx.saved_tensors
    return hinge_d_backward(d_real, d_fake, grad_loss)


hinge_d_forward.register_autograd(_d_backward, setup_context=_d_setup_context)


@torch.library.custom_op("sagan::hinge_g_forward", mutates_args=(), device_types="cuda")
def hinge_g_forward(d_fake: torch.Tensor) -> torch.Tensor:
    """$L_G$ (a 0-d float32 tensor) of float32 logits."""
    fake = _flat("d_fake", d_fake)
    loss = fake.new_empty(())
    launch(
        get_kernel(SOURCE, "hinge_generator_forward"),
        (1,),
        (THREADS,),
        fake,
        np.int32(fake.numel()),
        loss,
    )
    return loss


@hinge_g_forward.register_fake
def _(d_fake):
    return d_fake.new_empty(())


@torch.library.custom_op("sagan::hinge_g_backward", mutates_args=(), device_types="cuda")
def hinge_g_backward(d_fake: torch.Tensor, grad_loss: torch.Tensor) -> torch.Tensor:
    r"""$\partial L / \partial d^{fake}$ from $\partial L / \partial L_G$."""
    fake = _flat("d_fake", d_fake)
    grad_fake = torch.empty_like(fake)
    launch(
        get_kernel(SOURCE, "hinge_generator_backward"),
        (1,),
        (THREADS,),
        np.int32(fake.numel()),
        grad_loss.float().contiguous(),
        grad_fake,
    )
    return grad_fake.view(d_fake.shape)


@hinge_g_backward.register_fake
def _(d_fake, grad_loss):
    return d_fake.new_empty(d_fake.shape)  # contiguous, as the real op's


def _g_setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _g_backward(ctx, grad_loss):
    (d_fake,) = ctx.saved_tensors
    return hinge_g_backward(d_fake, grad_loss)


hinge_g_forward.register_autograd(_g_backward, setup_context=_g_setup_context)


def hinge_loss_discriminator(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """The kernel for the op "hinge_loss_discriminator": $L_D$, a 0-d tensor."""
    dtype = torch.result_type(d_real, d_fake)
    return hinge_d_forward(d_real.float(), d_fake.float()).to(dtype)


def hinge_loss_generator(d_fake: torch.Tensor) -> torch.Tensor:
    """The kernel for the op "hinge_loss_generator": $L_G$, a 0-d tensor."""
    return hinge_g_forward(d_fake.float()).to(d_fake.dtype)
