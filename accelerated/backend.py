r"""One place decides whether an op runs a hand-written CuPy kernel or plain PyTorch.

Every op in `accelerated.ops` starts with

```python
kernel = kernel_for("self_attention", x, W_f, ...)
if kernel is not None:
    return kernel(x, W_f, ...)
# ... the readable PyTorch path
```

`kernel_for` returns a kernel only when all of these hold:

1. the backend is not forced to `"torch"` (by `force_backend` or the `SAGAN_BACKEND`
   environment variable);
2. every tensor argument lives on a CUDA device (so on CPU the answer is always `None`);
3. CuPy imports, and a kernel is registered under that op name.

Kernels register themselves with `register_kernel(op_name, fn)` from their own module; the
first CUDA call imports `accelerated.kernels` (when it exists and CuPy is present) so that its
registrations happen. A kernel takes the same arguments as the op it replaces and returns the
same thing, except `"power_iteration_batched"`, which iterates M matrices at once:
`fn(W (M, m, n), u (M, m), n_steps, eps) -> (sigma (M,), u (M, m), v (M, n))`
(`accelerated.ops.power_iteration` calls it with M = 1).

Forcing `"cupy"` says "a kernel or an error": it raises `RuntimeError` where no kernel can run
(no CUDA device, no CuPy, CPU tensors, or nothing registered for the op) instead of quietly
measuring the PyTorch path.
"""

import contextvars
import importlib
import importlib.util
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

OP_NAMES = frozenset(
    {
        "self_attention",
        "power_iteration_batched",
        "hinge_loss_discriminator",
        "hinge_loss_generator",
    }
)
BACKENDS = ("torch", "cupy")
ENV_VAR = "SAGAN_BACKEND"
KERNELS_MODULE = "accelerated.kernels"

_kernels: dict[str, Callable] = {}
_kernels_loaded = False
# Set by force_backend; _FROM_ENV means "not forced here: read SAGAN_BACKEND".
_FROM_ENV = "env"
_forced: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "sagan_backend", default=_FROM_ENV
)


def register_kernel(op_name: str, fn: Callable) -> None:
    """Make `fn` the CuPy implementation of `op_name` (used for CUDA tensors only)."""
    if op_name not in OP_NAMES:
        raise ValueError(f"unknown op {op_name!r}: register one of {sorted(OP_NAMES)}")
    if not callable(fn):
        raise ValueError(f"the kernel for {op_name!r} must be callable, got {type(fn).__name__}")
    _kernels[op_name] = fn


def cupy_usable() -> bool:
    """True when a CUDA device is present and CuPy can be imported."""
    return torch.cuda.is_available() and importlib.util.find_spec("cupy") is not None


def all_cuda(tensors) -> bool:
    """True when every tensor argument is on a CUDA device (non-tensors are ignored)."""
    found = [t for t in tensors if isinstance(t, torch.Tensor)]
    return bool(found) and all(t.is_cuda for t in found)


def requested_backend() -> str | None:
    """The forced backend ("torch", "cupy") or None for the automatic choice."""
    name = _forced.get()
    if name == _FROM_ENV:
        name = os.environ.get(ENV_VAR) or None
    if name is not None and name not in BACKENDS:
        raise ValueError(f"{ENV_VAR}={name!r} is not a backend: use one of {BACKENDS} or unset it")
    return name


def _require_cupy() -> None:
    if not cupy_usable():
        raise RuntimeError(
            "backend 'cupy' was forced but cannot run here: it needs a CUDA device and CuPy "
            "(pip install 'sagan-course[cuda12]' or '[cuda13]'); force 'torch' or unset "
            f"{ENV_VAR} instead"
        )


@contextmanager
def force_backend(name: str | None) -> Iterator[None]:
    """Within the block, use only `name` ("torch" or "cupy"); None restores the automatic choice.

    Raises RuntimeError on entry when "cupy" is forced where it cannot run.
    """
    if name is not None and name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: use one of {BACKENDS} or None")
    if name == "cupy":
        _require_cupy()
    token = _forced.set(name)
    try:
        yield
    finally:
        _forced.reset(token)


def _load_kernels() -> None:
    """Import the kernels package once so that its `register_kernel` calls run."""
    global _kernels_loaded
    if _kernels_loaded:
        return
    _kernels_loaded = True
    try:
        importlib.import_module(KERNELS_MODULE)
    except ModuleNotFoundError as error:
        if error.name != KERNELS_MODULE:
            raise


def kernel_for(op_name: str, *tensors) -> Callable | None:
    """The registered kernel for `op_name` if it should run on these tensors, else None."""
    if op_name not in OP_NAMES:
        raise ValueError(f"unknown op {op_name!r}: use one of {sorted(OP_NAMES)}")
    backend = requested_backend()
    if backend == "torch":
        return None
    if backend is None and not (all_cuda(tensors) and cupy_usable()):
        return None
    if backend == "cupy":
        _require_cupy()
        if not all_cuda(tensors):
            raise RuntimeError(
                f"backend 'cupy' was forced but {op_name} got tensors that are not all on a "
                "CUDA device: move them with .cuda() or force 'torch'"
            )
    _load_kernels()
    kernel = _kernels.get(op_name)
    if kernel is None and backend == "cupy":
        raise RuntimeError(
            f"backend 'cupy' was forced but no kernel is registered for {op_name!r}: "
            "force 'torch' for this op"
        )
    return kernel
