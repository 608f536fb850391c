"""CPU stand-ins for the CuPy kernels: plain PyTorch computing what each kernel computes.

Registered as the CPU implementations of the kernels' custom ops (`sagan::...`) and, with
`accelerated.backend.register_kernel(..., device_type="cpu")`, as the ops' kernels for CPU
tensors, they let the whole kernel route run on a CPU: the op schemas, fakes, autograd wiring,
head-size padding, and `torch.compile` around them in the model's layout. The attention ones are
the library's own PyTorch formulas (`forward_in_torch`, `backward_in_torch`, with the kernels'
recomputation P = exp(S - L) and dS = P (dP - D)); the others are written out here.
"""

import torch
import torch.nn.functional as F

from accelerated import backend
from accelerated.kernels import attention, hinge, power_iteration


def power_iteration_twin(weights, u, n_steps, eps):
    sigmas, us, vs = [], [], []
    for W, u_b in zip(weights, u.split([W.shape[0] for W in weights]), strict=True):
        for _ in range(n_steps):
            v_b = F.normalize(W.T @ u_b, dim=0, eps=eps)
            u_b = F.normalize(W @ v_b, dim=0, eps=eps)
        sigmas.append(u_b @ (W @ v_b))
        us.append(u_b)
        vs.append(v_b)
    return torch.stack(sigmas), torch.cat(us), torch.cat(vs)


def hinge_d_twin(d_real, d_fake):
    return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()


def hinge_d_backward_twin(d_real, d_fake, grad_loss):
    grad_real = torch.where(1 - d_real > 0, -grad_loss / d_real.numel(), 0.0)
    grad_fake = torch.where(1 + d_fake > 0, grad_loss / d_fake.numel(), 0.0)
    return grad_real.contiguous(), grad_fake.contiguous()


TWINS = {
    attention.attention_forward: attention.forward_in_torch,
    attention.attention_backward: attention.backward_in_torch,
    power_iteration.power_iteration_packed: power_iteration_twin,
    hinge.hinge_d_forward: hinge_d_twin,
    hinge.hinge_d_backward: hinge_d_backward_twin,
    hinge.hinge_g_forward: lambda d_fake: -d_fake.mean(),
    hinge.hinge_g_backward: lambda d_fake, g: torch.full_like(d_fake, 1.0) * (-g / d_fake.numel()),
}
# The kernels the backend hands the ops: the same Python wrappers as on CUDA.
KERNELS = {
    "self_attention": (attention.fused_attention, attention.unsupported),
    "power_iteration_batched": (power_iteration.power_iteration_batched, None),
    "hinge_loss_discriminator": (hinge.hinge_loss_discriminator, None),
    "hinge_loss_generator": (hinge.hinge_loss_generator, None),
}


def register_ops() -> None:
    """The twins as the custom ops' CPU kernels (they stay registered in this process; only
    tests call sagan:: ops on CPU tensors)."""
    for op, twin in TWINS.items():
        op.register_kernel("cpu", twin)


def register_own_attention_ops() -> None:
    """The attention ops' own implementations (`_forward`, `_backward_op`, the code a CUDA call
    runs) as their CPU kernels in place of the stand-ins: with `attention.get_kernel` made to
    raise, every call takes the fallback of a kernel that did not compile. `register_ops` puts
    the stand-ins back."""
    attention.attention_forward.register_kernel("cpu", attention._forward)
    attention.attention_backward.register_kernel("cpu", attention._backward_op)


def register_kernels() -> None:
    """`register_ops`, and the kernel wrappers as the backend's kernels for CPU tensors."""
    register_ops()
    for name, (fn, unsupported) in KERNELS.items():
        backend.register_kernel(name, fn, device_type="cpu", unsupported=unsupported)


def unregister_kernels() -> None:
    for name in KERNELS:
        backend.unregister_kernel(name, "cpu")
