r"""Hand-written CUDA kernels (compiled at run time by CuPy) for SAGAN's hot spots.

| op name (`accelerated.backend`) | kernel function | CUDA source |
|---|---|---|
| `self_attention` | `attention.fused_attention` | `attention.cu` |
| `power_iteration_batched` | `power_iteration.power_iteration_batched` | `power_iteration.cu` |
| `hinge_loss_discriminator` | `hinge.hinge_loss_discriminator` | `hinge.cu` |
| `hinge_loss_generator` | `hinge.hinge_loss_generator` | `hinge.cu` |

Importing this package registers the kernels with `accelerated.backend` only where they can
run: CuPy imports and a CUDA device is present. Anywhere else (a CPU-only machine, CI) the import
succeeds and registers nothing, so the ops keep their PyTorch path. The kernel modules themselves
import without CuPy (it is imported at the first launch), so their custom ops, shapes and names
can be inspected and tested anywhere.

**What has been checked, and what has not.** Without a GPU: every source compiles with nvcc for
sm_80 and sm_90 and with NVRTC as CuPy calls it (`tests/test_kernels_compile.py`); the CUDA
sources run unchanged on the CPU through a small std::thread shim, against NumPy (bfloat16
against float32 bit for bit), and under AddressSanitizer and ThreadSanitizer
(`tests/test_kernels_on_cpu.py`); the custom ops' schemas, fake tensors, autograd wiring and
`opcheck` run with PyTorch stand-ins for the kernels (`tests/test_kernels_ops.py`). On a GPU:
`tests/test_kernels_gpu.py` (values and gradients against PyTorch and NumPy, bfloat16, streams,
`opcheck`) and `python -m accelerated.bench` (speed, memory) are still to be run.
"""

import importlib.util

import torch

from accelerated import backend


def kernels_available() -> bool:
    """True when CuPy is installed and PyTorch sees a CUDA device."""
    return importlib.util.find_spec("cupy") is not None and torch.cuda.is_available()


def register_all() -> None:
    """Register every kernel under its op name (call only where `kernels_available()`)."""
    from accelerated.kernels import attention, hinge, power_iteration

    backend.register_kernel(
        "self_attention", attention.fused_attention, unsupported=attention.unsupported
    )
    backend.register_kernel("power_iteration_batched", power_iteration.power_iteration_batched)
    backend.register_kernel("hinge_loss_discriminator", hinge.hinge_loss_discriminator)
    backend.register_kernel("hinge_loss_generator", hinge.hinge_loss_generator)


if kernels_available():
    register_all()
