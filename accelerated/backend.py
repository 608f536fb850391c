r"""One place decides whether an op runs a hand-written CuPy kernel or plain PyTorch.

Every op in `accelerated.ops` asks before its PyTorch path:

```python
kernel = kernel_for("hinge_loss_generator", d_fake)
if kernel is not None:
    return kernel(d_fake)
# ... the readable PyTorch path
```

`kernel_for` returns a kernel only when all of these hold:

1. the kernel is chosen: the backend is forced to `"cupy"` (by `force_backend` or the
   `SAGAN_BACKEND` environment variable), or the op is in `AUTOMATIC`, the ops whose kernel is
   measured faster than PyTorch (none yet: no kernel runs unless chosen);
2. a kernel is registered for the op and for the tensors' device type, and every tensor has a
   dtype the op's kernel takes (`KERNEL_DTYPES`); for CUDA, CuPy imports too;
3. the kernel takes these inputs (`unsupported`, if registered with one, says why not: then the
   op's PyTorch path runs, with one warning).

Kernels register themselves with `register_kernel(op_name, fn)` (`accelerated.kernels` does so
at import where CuPy and a GPU are present); the first CUDA call imports that package so that
its registrations happen. `register_kernel(..., device_type="cpu")` registers an implementation
for CPU tensors: the tests register PyTorch stand-ins of the kernels' custom ops that way, so the
kernel route runs on a CPU. What each op hands its kernel:

- `self_attention`: `fn(q (B, N, d_qk), k (B, N_k, d_qk), v (B, N_k, d_v)) -> (B, N, d_v)`,
  eq. (1) and eq. (2)'s sum over keys, differentiable; float32 or bfloat16 (the op asks only
  when the attention map beta is not requested: no kernel returns it);
- `power_iteration_batched`: `fn(W (M, m, n), u (M, m), n_steps, eps)`
  `-> (sigma (M,), u (M, m), v (M, n))`, no gradient; float32;
- `hinge_loss_discriminator`: `fn(d_real, d_fake) -> L_D`, as the op; float32;
- `hinge_loss_generator`: `fn(d_fake) -> L_G`, as the op; float32.

Forcing `"cupy"` says "a kernel or an error": `kernel_for` raises `RuntimeError` where no kernel
can run (no CUDA device or CuPy for CUDA tensors, another dtype, nothing registered for the
device) instead of quietly measuring the PyTorch path. Inputs a registered kernel does not take
(`unsupported`) are not an error: the PyTorch path runs, with one warning.

Under `torch.compile` the choice is made while tracing: `force_backend` sets a module global, on
which Dynamo guards (a change recompiles), so the compiled graphs have no break at each op;
`SAGAN_BACKEND` is read when tracing, so set it before the first compiled call.
"""

import importlib
import importlib.util
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

# The dtypes each op's kernel takes (the list above).
KERNEL_DTYPES = {
    "self_attention": (torch.float32, torch.bfloat16),
    "power_iteration_batched": (torch.float32,),
    "hinge_loss_discriminator": (torch.float32,),
    "hinge_loss_generator": (torch.float32,),
}
OP_NAMES = frozenset(KERNEL_DTYPES)
# Ops whose kernel runs without being forced: those measured faster than their PyTorch path on a
# GPU. None is yet (docs/performance.md): the attention kernel uses no tensor cores.
AUTOMATIC: frozenset[str] = frozenset()
BACKENDS = ("torch", "cupy")
ENV_VAR = "SAGAN_BACKEND"
KERNELS_MODULE = "accelerated.kernels"

# (op name, device type) -> (kernel, unsupported(*tensors) -> reason or None, or None)
_kernels: dict[tuple[str, str], tuple[Callable, Callable | None]] = {}
_warned: set[str] = set()  # the fallback warnings already given
_kernels_loaded = False
_CUPY_INSTALLED = importlib.util.find_spec("cupy") is not None  # without importing it
# Set by force_backend (process-wide); _FROM_ENV means "not forced: read SAGAN_BACKEND". A plain
# global, not a ContextVar: Dynamo can trace and guard a global, and breaks its graph at
# ContextVar.get.
_FROM_ENV = "env"
_forced: str | None = _FROM_ENV


def register_kernel(
    op_name: str, fn: Callable, device_type: str = "cuda", unsupported: Callable | None = None
) -> None:
    """Make `fn` the kernel of `op_name` for tensors on `device_type` ("cuda": the CuPy kernels).
    `unsupported(*tensors)`, if given, returns why `fn` cannot take those inputs, or None."""
    if op_name not in OP_NAMES:
        raise ValueError(f"unknown op {op_name!r}: register one of {sorted(OP_NAMES)}")
    if not callable(fn):
        raise ValueError(f"the kernel for {op_name!r} must be callable, got {type(fn).__name__}")
    _kernels[op_name, device_type] = (fn, unsupported)


def unregister_kernel(op_name: str, device_type: str) -> None:
    """Remove the kernel of `op_name` for `device_type`, if any."""
    _kernels.pop((op_name, device_type), None)


def cupy_usable() -> bool:
    """True when a CUDA device is present and CuPy can be imported."""
    return torch.cuda.is_available() and _CUPY_INSTALLED


def _only_tensors(args) -> list[torch.Tensor]:
    return [t for t in args if isinstance(t, torch.Tensor)]


def device_type(tensors) -> str | None:
    """The device type ("cuda", "cpu") shared by every tensor argument, or None when they are
    on devices of different types or there is no tensor."""
    types = {t.device.type for t in _only_tensors(tensors)}
    return types.pop() if len(types) == 1 else None


def kernel_dtypes(op_name: str, tensors) -> bool:
    """True when every tensor argument has a dtype that `op_name`'s kernel takes."""
    return all(t.dtype in KERNEL_DTYPES[op_name] for t in _only_tensors(tensors))


def requested_backend() -> str | None:
    """The forced backend ("torch", "cupy") or None for the automatic choice."""
    name = _forced
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
    if name == "cupy" and not any(device != "cuda" for _, device in _kernels):
        _require_cupy()  # unless kernels are registered for another device (stand-ins)
    global _forced
    before, _forced = _forced, name
    try:
        yield
    finally:
        _forced = before


def _load_kernels() -> None:
    """Import the kernels package (once) so that its `register_kernel` calls run."""
    global _kernels_loaded
    _kernels_loaded = True
    try:
        importlib.import_module(KERNELS_MODULE)
    except ModuleNotFoundError as error:
        if error.name != KERNELS_MODULE:
            raise


def tune_for_fixed_shapes(device: torch.device) -> None:
    """On CUDA, `cudnn.benchmark`: cuDNN times its convolution algorithms once per new shape and
    keeps the fastest (training's shapes are fixed, so only the first iteration pays). Training
    and `bench step` both call this, so the bench times the convolutions training runs."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def warn_once(message: str) -> None:
    """Warn with `message` the first time only (a fallback is reported once per process)."""
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def kernel_for(op_name: str, *tensors, require: bool = False) -> Callable | None:
    """The registered kernel for `op_name` if it should run on these tensors, else None.
    `require=True` asks as if the backend were forced to "cupy" (used by a forced route)."""
    if op_name not in OP_NAMES:
        raise ValueError(f"unknown op {op_name!r}: use one of {sorted(OP_NAMES)}")
    backend = requested_backend()
    forced = require or backend == "cupy"
    if not forced and (backend == "torch" or op_name not in AUTOMATIC):
        return None
    device = device_type(tensors)
    if device == "cuda":
        if not cupy_usable():
            if forced:
                _require_cupy()
            return None
        if not _kernels_loaded:
            _load_kernels()
    fn, unsupported = _kernels.get((op_name, device), (None, None))
    if fn is None or not kernel_dtypes(op_name, tensors):
        if not forced:
            return None
        if device == "cuda" and fn is None:
            raise RuntimeError(
                f"backend 'cupy' was forced but no kernel is registered for {op_name!r}: "
                "force 'torch' for this op"
            )
        allowed = " or ".join(str(d) for d in KERNEL_DTYPES[op_name])
        got = ", ".join(f"{t.dtype} on {t.device}" for t in _only_tensors(tensors))
        raise RuntimeError(
            f"backend 'cupy' was forced but the {op_name!r} kernel takes CUDA tensors of "
            f"{allowed}, got {got}: move and cast them, or force 'torch'"
        )
    reason = None if unsupported is None else unsupported(*tensors)
    if reason is not None:
        warn_once(
            f"the {op_name!r} kernel cannot take these inputs ({reason}): its PyTorch "
            "path runs instead"
        )
        return None
    return fn
