r"""Benchmark of the attention core, eqs. (1)-(2): $o = \operatorname{softmax}(q k^\top)\, v$.

Implementations, on the same (B, N, d_qk), (B, N_k, d_qk), (B, N_k, d_v) inputs:

- `naive`: `softmax(q @ k^T) @ v`, which stores the (B, N, N_k) matrix (and its softmax);
- `sdpa-<backend>`: `scaled_dot_product_attention(..., scale=1.0)` restricted to one backend
  (math, flash, efficient, cudnn); a backend that rejects the shapes or dtype is listed as such
  (flash needs d_qk == d_v);
- `cupy`: the fused kernel of `accelerated/kernels/attention.cu` (CUDA and CuPy only). Where a
  kernel did not run (it did not compile, say), the row is a `fallback` naming why: its times
  are PyTorch's.

Shapes (SPEC section 6): the official attention block (query/key C/8, value C/2, keys and values
2x2 max-pooled) of the 128x128 model's G and D on 32x32 and 64x64 feature maps, with C read from
the architecture table, at batch 64 and 256. Forward alone (no autograd) and forward + backward.
"""

import warnings
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from accelerated.bench import fallbacks
from accelerated.bench.timing import measure
from accelerated.ops import attention_dims

SDPA_BACKENDS = {
    "math": SDPBackend.MATH,
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
}
MODES = ("forward", "forward+backward")


@dataclass(frozen=True)
class Case:
    """One attention block's shapes."""

    net: str  # "G" or "D"
    size: int  # feature map is size x size
    batch: int
    channels: int
    d_qk: int
    d_v: int
    n_queries: int
    n_keys: int


def model_channels(net: str, size: int, resolution: int = 128, base: int = 64) -> int:
    """Channels of G's or D's feature map of `size` pixels a side in the `resolution` model."""
    from accelerated.models.architectures import ARCHITECTURES

    arch = ARCHITECTURES[resolution]
    if net == "G":
        multiples, sizes = arch.g_channels[1:], arch.g_sizes()
    else:
        multiples, sizes = arch.d_channels, arch.d_sizes(resolution)
    if size not in sizes:
        raise ValueError(f"{net} of the {resolution} model has no {size}x{size} feature map")
    return multiples[sizes.index(size)] * base


def cases(sizes, batches, variant: str = "official") -> list[Case]:
    """The attention blocks of G and D at each feature-map size, for each batch size."""
    result = []
    for size in sizes:
        for net in ("G", "D"):
            C = model_channels(net, size)
            d_qk, d_v, pool = attention_dims(C, variant)
            n_keys = size * size // 4 if pool else size * size
            for batch in batches:
                result.append(Case(net, size, batch, C, d_qk, d_v, size * size, n_keys))
    return result


def naive(q, k, v):
    return torch.softmax(q @ k.transpose(1, 2), dim=-1) @ v  # stores (B, N, N_k)


def sdpa(backend: SDPBackend):
    def run(q, k, v):
        with sdpa_kernel(backend):
            return F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None], scale=1.0)[
                :, 0
            ]

    return run


def implementations(device: torch.device) -> dict:
    """name -> function(q, k, v) -> o, or a string saying why it cannot run here."""
    impls = {"naive": naive}
    impls.update({f"sdpa-{name}": sdpa(backend) for name, backend in SDPA_BACKENDS.items()})
    from accelerated.kernels import kernels_available

    if device.type == "cuda" and kernels_available():
        from accelerated.kernels.attention import fused_attention

        impls["cupy"] = fused_attention
    else:
        impls["cupy"] = "needs a CUDA GPU and CuPy: not measured here"
    return impls


def flop_count(case: Case, mode: str) -> float:
    """Matrix-product FLOPs: 2 B N N_k (d_qk + d_v) forward; the backward does twice that."""
    forward = 2 * case.batch * case.n_queries * case.n_keys * (case.d_qk + case.d_v)
    return forward if mode == "forward" else 3 * forward


def run_case(case: Case, impl, mode: str, device, dtype, reps: int) -> dict:
    """One row of results: time, peak memory and throughput, or why it did not run."""
    row = {**asdict(case), "mode": mode, "dtype": str(dtype).removeprefix("torch.")}
    if isinstance(impl, str):
        return {**row, "status": "not run", "note": impl}
    g = torch.Generator(device=device).manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=g, device=device).to(dtype)

    B, N, N_k = case.batch, case.n_queries, case.n_keys
    q, k, v = randn(B, N, case.d_qk), randn(B, N_k, case.d_qk), randn(B, N_k, case.d_v)
    grad_o = randn(B, N, case.d_v)
    if mode == "forward":

        def step():
            with torch.no_grad():
                return impl(q, k, v)
    else:
        q, k, v = (t.requires_grad_() for t in (q, k, v))

        def step():
            return torch.autograd.grad(impl(q, k, v), (q, k, v), grad_o)

    before = fallbacks.snapshot()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SDPA warns about each backend it cannot use
            ms, peak = measure(step, device, reps)
    except torch.OutOfMemoryError:
        return {**row, "status": "out of memory"}
    except (RuntimeError, ValueError) as error:
        return {**row, "status": "rejected", "note": str(error).strip().splitlines()[0][:160]}
    except Exception as error:  # any other failure is this row's, not the run's
        note = f"{type(error).__name__}: {str(error).strip()[:160]}"
        return {**row, "status": "failed", "note": note}
    tflops = flop_count(case, mode) / (ms * 1e-3) / 1e12
    row.update(ms=ms, peak_mib=peak, tflop_s=tflops)
    reasons = fallbacks.since(before)  # the kernel's warnings are silenced above, not these
    if reasons:
        return {**row, "status": "fallback", "note": fallbacks.note(reasons)}
    return {**row, "status": "ok"}


def benchmark(sizes, batches, device, dtype, reps: int, on_row=None) -> list[dict]:
    """Every implementation on every case, forward and forward + backward; `on_row(row)` is
    called as each row finishes."""
    impls = implementations(device)
    rows = []
    for case in cases(sizes, batches):
        for mode in MODES:
            for name, impl in impls.items():
                rows.append({"impl": name, **run_case(case, impl, mode, device, dtype, reps)})
                if on_row is not None:
                    on_row(rows[-1])
                if device.type == "cuda":
                    torch.cuda.empty_cache()  # each row's peak memory starts from the same pool
    return rows


def format_table(rows: list[dict]) -> str:
    """The rows as a fixed-width text table."""
    header = f"{'net':3} {'map':>5} {'B':>4} {'d_qk/d_v':>8} {'mode':16} {'impl':15} "
    header += f"{'ms':>9} {'peak MiB':>9} {'TFLOP/s':>8}  note"
    lines = [header, "-" * len(header)]
    for r in rows:
        shape = f"{r['d_qk']}/{r['d_v']}"
        size = f"{r['size']}^2"
        start = f"{r['net']:3} {size:>5} {r['batch']:>4} {shape:>8} {r['mode']:16} {r['impl']:15} "
        if r["status"] == "ok":
            peak = "-" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}"
            lines.append(start + f"{r['ms']:9.3f} {peak:>9} {r['tflop_s']:8.2f}")
        else:
            lines.append(start + f"{'':>9} {'':>9} {'':>8}  {r['status']}: {r.get('note', '')}")
    return "\n".join(lines)
