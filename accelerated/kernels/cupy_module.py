r"""Compiling the `.cu` files with CuPy and launching them on PyTorch's memory and stream.

Three facts make CuPy kernels and PyTorch work together without copies or races:

1. **Memory**: `cupy.from_dlpack(tensor)` wraps a CUDA tensor's memory as a CuPy array
   (zero-copy). bfloat16 tensors are passed as int16 views: a kernel only sees the address, and
   CuPy needs no bfloat16 dtype for that.
2. **Stream**: PyTorch queues its work on `torch.cuda.current_stream()`. `launch` wraps that
   stream as a CuPy stream and launches inside `with` it, so the kernel is queued on the same
   stream: it runs after the PyTorch work that produced its inputs and before the work that
   reads its outputs, and the caching allocator's reuse of freed memory stays safe.
3. **Compilation**: `cupy.RawModule` compiles with NVRTC at first use and caches the binary
   on disk (`~/.cupy/kernel_cache`), keyed by the source text and options. The local header
   `common.cuh` is pasted into the source first, so an edited header is a new key too (an
   `#include` would be invisible to that cache). Templates (head sizes, dtype) are compiled one
   instantiation at a time through `name_expressions`; each module is also kept in memory here.

CuPy is imported inside the functions, so this module imports on machines without it.
"""

import functools
import re
from pathlib import Path

import torch

KERNEL_DIR = Path(__file__).resolve().parent
BASE_OPTIONS = ("-std=c++17",)
# Defined for the bfloat16 instantiations only: they need <cuda_bf16.h> from the CUDA toolkit.
BF16_DEFINE = "-DSAGAN_BF16"
CUDA_TYPES = {torch.float32: "float", torch.bfloat16: "__nv_bfloat16"}


def compile_options(dtype: torch.dtype = torch.float32) -> tuple[str, ...]:
    """NVRTC/nvcc options for kernels storing `dtype` (float32 or bfloat16)."""
    if dtype not in CUDA_TYPES:
        raise ValueError(f"the kernels store float32 or bfloat16, got {dtype}")
    return (*BASE_OPTIONS, BF16_DEFINE) if dtype == torch.bfloat16 else BASE_OPTIONS


LOCAL_INCLUDE = re.compile(r'^#include "([\w.]+)"$', re.MULTILINE)


def kernel_source(filename: str) -> str:
    """The text of `filename` with its local `#include "x.cuh"` lines replaced by the headers
    (each header is pasted where it is included, so a header may be included once per source)."""
    text = (KERNEL_DIR / filename).read_text()
    return LOCAL_INCLUDE.sub(lambda match: _header(match.group(1)), text)


def _header(filename: str) -> str:
    return kernel_source(filename).replace("#pragma once\n", "")


def instantiating_source(filename: str, names: list[str]) -> str:
    """`kernel_source(filename)` plus a table taking the address of each kernel in `names`, so
    that nvcc compiles those template instantiations, as NVRTC's name expressions make it."""
    table = ["void* sagan_instances[] = {", *[f"    (void*)&{n}," for n in names], "};"]
    return "\n".join([kernel_source(filename), *(table if names else [])]) + "\n"


@functools.cache
def nvrtc_options(dtype: torch.dtype = torch.float32) -> tuple[str, ...]:
    """`compile_options`, plus for bfloat16 the CUDA headers' folder where `cuda.pathfinder`
    (a CuPy 14 dependency) finds one, e.g. from `pip install 'cupy-cuda13x[ctk]'`. CuPy may add
    it as well; naming it twice does no harm, missing it fails on `#include <cuda_bf16.h>`."""
    options = compile_options(dtype)
    if dtype != torch.bfloat16:
        return options
    try:
        from cuda.pathfinder import find_nvidia_header_directory

        directory = find_nvidia_header_directory("cudart")
    except Exception:  # no pathfinder, or it found nothing: leave it to CuPy's own search
        directory = None
    return (*options, f"-I{directory}") if directory else options


@functools.cache
def _module(filename: str, options: tuple[str, ...], name_expressions: tuple[str, ...] | None):
    import cupy

    source = kernel_source(filename)
    module = cupy.RawModule(code=source, options=options, name_expressions=name_expressions)
    try:
        module.compile()
    except cupy.cuda.compiler.CompileException as error:
        hint = ""
        if BF16_DEFINE in options and "cuda_bf16.h" in str(error):
            hint = (
                " (bfloat16 kernels need the CUDA toolkit headers: pip install "
                "'cupy-cuda13x[ctk]' or 'cupy-cuda12x[ctk]', or set CUDA_PATH)"
            )
        raise RuntimeError(f"compiling {filename} failed{hint}: {error}") from error
    return module


_compiled: dict[str, object] = {}  # kernel name -> the compiled kernel, for `kernel_attributes`


def get_kernel(filename: str, name: str, dtype: torch.dtype = torch.float32):
    """The compiled kernel `name` of `filename` (a plain or a template name, e.g.
    `attention_forward<float, 16, 64>`), compiled once per process and cached."""
    templated = "<" in name
    module = _module(filename, nvrtc_options(dtype), (name,) if templated else None)
    _compiled[name] = kernel = module.get_function(name)
    return kernel


def kernel_attributes() -> dict[str, dict]:
    """{kernel name: its attributes} for each kernel this process compiled, as the driver
    reports them for the current device (CuPy's `RawKernel.attributes`: `num_regs` per thread,
    `local_size_bytes` per thread, where spills go, `shared_size_bytes` of static shared memory,
    `max_threads_per_block` at those registers, ...), or why it could not read them."""
    found = {}
    for name, kernel in sorted(_compiled.items()):
        try:
            found[name] = dict(kernel.attributes)
        except Exception as error:  # a record of the run: report, never stop it
            found[name] = {"error": f"{type(error).__name__}: {error}"[:200]}
    return found


def as_cupy(tensor: torch.Tensor):
    """A CuPy array sharing `tensor`'s memory (DLPack, no copy); bfloat16 as an int16 view."""
    import cupy

    if tensor.dtype == torch.bfloat16:
        tensor = tensor.view(torch.int16)
    return cupy.from_dlpack(tensor.detach())


def launch(kernel, grid: tuple[int, ...], block: tuple[int, ...], *args) -> None:
    """Queue `kernel` on PyTorch's current stream of the device of the tensor arguments.

    Tensors are passed by address (DLPack); ints and floats must already be NumPy scalars of
    the kernel's C types (`numpy.int32`, `numpy.float32`).
    """
    import cupy

    device = next(a.device for a in args if isinstance(a, torch.Tensor))
    index = torch.cuda.current_device() if device.index is None else device.index
    torch_stream = torch.cuda.current_stream(index)
    with cupy.cuda.Device(index), _cupy_stream(cupy, torch_stream, index):
        cupy_args = tuple(as_cupy(a) if isinstance(a, torch.Tensor) else a for a in args)
        kernel(grid, block, cupy_args)


def _cupy_stream(cupy, torch_stream: torch.cuda.Stream, device_index: int):
    """CuPy's handle on a stream that PyTorch owns: `Stream.from_external` (CuPy 14+, the CUDA
    stream protocol) where it exists, else the older `ExternalStream` (deprecated in CuPy 14)."""
    if hasattr(cupy.cuda.Stream, "from_external") and hasattr(torch_stream, "__cuda_stream__"):
        return cupy.cuda.Stream.from_external(torch_stream)
    return cupy.cuda.ExternalStream(torch_stream.cuda_stream, device_index)
