r"""Model FLOPs of one training iteration, counted by `torch.utils.flop_counter.FlopCounterMode`.

The counter adds up the matrix products and convolutions (forward and backward, a multiply-add
counted as 2 FLOPs) that PyTorch dispatches while `GANStep.iteration` runs: one D step (G forward
without gradients on B images, D forward and backward on 2B) and one G step (G forward and
backward, D forward and backward for the input gradients only). Element-wise work (BN, ReLU,
softmax, Adam) is not counted, as in the usual definition of model FLOPs utilisation.

The count runs on the CPU in float32 with the readable attention path (the kernels' FLOPs are the
same products, but a CuPy kernel is invisible to the counter). It is exactly linear in the batch
(the tests check it at small sizes), so the 128x128 model is counted at batch 1 and scaled.

The cost model of SPEC section 6 says one iteration is about $(4F_G + 8F_D)\,B$ FLOPs with
$F_G$, $F_D$ the forward FLOPs per image; `forward_flops` counts those on the meta device.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from accelerated.bench.trainer import config, synthetic_gan, synthetic_step
from accelerated.models import ModelConfig, build_models


def count(fn) -> int:
    """FLOPs of the matrix products and convolutions that `fn()` runs."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def iteration_flops(preset: str, batch: int) -> int:
    """FLOPs of one `GANStep.iteration` of `preset` at global batch `batch`, run on the CPU."""
    cfg = config(preset, batch, {"run.compile": False, "run.backend": "torch"})
    return count(synthetic_step(synthetic_gan(cfg, torch.device("cpu"))))


def forward_flops(model: ModelConfig) -> tuple[int, int]:
    """`(F_G, F_D)`: forward FLOPs per image of G and D (training mode, on the meta device)."""
    with torch.device("meta"):
        G, D = build_models(model)
        z = torch.zeros(1, model.z_dim)
        y = torch.zeros(1, dtype=torch.long) if model.conditional else None
        F_G = count(lambda: G(z, y))
        x = torch.zeros(1, 3, model.resolution, model.resolution)
        F_D = count(lambda: D(x, y))
    return F_G, F_D


def summary(preset: str, batch: int) -> dict:
    """The counted FLOPs per iteration at `batch` (from a count at batch 1), with the cost model's
    (4 F_G + 8 F_D) B beside it."""
    per_image = iteration_flops(preset, 1)
    F_G, F_D = forward_flops(config(preset, 1).model)
    return {
        "flops_per_iteration": per_image * batch,
        "flops_per_image": per_image,
        "forward_flops_G": F_G,
        "forward_flops_D": F_D,
        "cost_model_per_iteration": (4 * F_G + 8 * F_D) * batch,
    }


def at_mfu(flops_per_iteration: int, batch: int, peaks, mfu: float = 0.4) -> list[dict]:
    """For each `(pattern, dense bf16 TFLOP/s, part)` of `peaks`: the iterations and images per
    second that `mfu` of the peak would give, and the iterations at 100%."""
    rows = []
    for _, tflops, part in peaks:
        at_peak = tflops * 1e12 / flops_per_iteration
        it_s = mfu * at_peak
        rows.append({"part": part, "peak_bf16_tflops": tflops, "mfu": mfu, "it_s_at_peak": at_peak,
                     "it_s": it_s, "images_s": it_s * batch, "hours_per_1M": 1e6 / it_s / 3600})
    return rows


def format_table(counted: dict, rows: list[dict], batch: int) -> str:
    lines = [f"model FLOPs per iteration at B = {batch} (counted): "
             f"{counted['flops_per_iteration'] / 1e12:.4g} TFLOP "
             f"({counted['flops_per_image'] / 1e9:.4g} GFLOP per image of batch)",
             f"forward per image: F_G {counted['forward_flops_G'] / 1e9:.4g} GFLOP, "
             f"F_D {counted['forward_flops_D'] / 1e9:.4g} GFLOP; cost model (4 F_G + 8 F_D) B: "
             f"{counted['cost_model_per_iteration'] / 1e12:.4g} TFLOP",
             "",
             f"{'GPU':10} {'bf16 TFLOP/s':>12} {'it/s @100%':>11} {'MFU':>5} {'it/s':>7} "
             f"{'images/s':>9} {'h per 1M it':>11}"]
    for r in rows:
        lines.append(f"{r['part']:10} {r['peak_bf16_tflops']:12.0f} {r['it_s_at_peak']:11.2f} "
                     f"{100 * r['mfu']:4.0f}% {r['it_s']:7.2f} {r['images_s']:9.0f} "
                     f"{r['hours_per_1M']:11.1f}")
    return "\n".join(lines)
