r"""Benchmark of spectral normalisation over a whole model: what one training forward pays.

In training mode every SN layer's forward runs one power-iteration step and divides its weight
by $\sigma = u^\top W v$. Two ways to do that for all SN weights of G and D:

- `torch`: PyTorch's parametrization, reading `module.weight` of every SN layer (several small
  launches per layer);
- `cupy`: one launch of the batched power-iteration kernel for all weights
  (`accelerated.kernels.power_iteration`), then per weight the differentiable
  $\sigma = u^\top W v$ and $W / \sigma$ in PyTorch, and the new $u$, $v$ written back into the
  parametrization's buffers, so both do the same work.
"""

import torch
from torch import nn
from torch.nn.utils import parametrize

from accelerated.bench.timing import measure


def sn_modules(*models: nn.Module) -> list[nn.Module]:
    """Every module whose `weight` is spectrally normalised by PyTorch's parametrization."""
    return [
        m for model in models for m in model.modules() if parametrize.is_parametrized(m, "weight")
    ]


def torch_step(modules: list[nn.Module]):
    def step():
        return [m.weight for m in modules]  # training mode: power iteration + W / sigma

    return step


def kernel_step(modules: list[nn.Module]):
    from accelerated.kernels.power_iteration import power_iteration_many

    norms = [m.parametrizations.weight[0] for m in modules]  # the _SpectralNorm objects
    eps = {sn.eps for sn in norms}
    if len(eps) != 1:
        raise ValueError(f"the SN layers use different eps {sorted(eps)}: one launch needs one eps")
    (eps,) = eps
    weights = [m.parametrizations.weight.original for m in modules]

    def step():
        _, us, vs = power_iteration_many(weights, [sn._u for sn in norms], 1, eps)
        out = []
        for W, sn, u, v in zip(weights, norms, us, vs, strict=True):
            with torch.no_grad():
                sn._u.copy_(u)
                sn._v.copy_(v)
            W_mat = W.reshape(W.shape[0], -1)
            out.append(W / torch.dot(u, torch.mv(W_mat, v)))  # sigma = u^T W v, differentiable
        return out

    return step


def benchmark(cfg, device: torch.device, reps: int, on_row=None) -> list[dict]:
    """Both ways over the SN layers of `build_models(cfg)`; rows of results, each also handed
    to `on_row` as it finishes. A way that fails is a row saying how."""
    from accelerated.kernels import kernels_available
    from accelerated.models import build_models

    G, D = build_models(cfg)
    G, D = G.to(device).train(), D.to(device).train()
    modules = sn_modules(G, D)
    info = {
        "resolution": cfg.resolution,
        "sn_layers": len(modules),
        "sn_parameters": sum(m.parametrizations.weight.original.numel() for m in modules),
    }
    ways = {"torch": lambda: torch_step(modules)}
    if device.type == "cuda" and kernels_available():
        ways["cupy"] = lambda: kernel_step(modules)
    rows = []
    for impl in ("torch", "cupy"):
        row = {"impl": impl, **info}
        if impl not in ways:
            row.update(status="not run", note="needs a CUDA GPU and CuPy: not measured here")
        else:
            try:
                row.update(status="ok", ms=measure(ways[impl](), device, reps)[0])
            except Exception as error:  # this way's failure, not the run's
                row.update(status="failed", note=f"{type(error).__name__}: {error}"[:200])
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows


def format_table(rows: list[dict]) -> str:
    header = f"{'impl':6} {'model':>7} {'SN layers':>9} {'SN params':>11} {'ms':>9}  note"
    lines = [header, "-" * len(header)]
    for r in rows:
        model = f"{r['resolution']}^2"
        start = f"{r['impl']:6} {model:>7} {r['sn_layers']:>9} {r['sn_parameters']:>11} "
        if r["status"] == "ok":
            lines.append(start + f"{r['ms']:9.3f}")
        else:
            lines.append(start + f"{'':>9}  {r['status']}: {r['note']}")
    return "\n".join(lines)
