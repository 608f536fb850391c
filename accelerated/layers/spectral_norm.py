r"""Convolution, linear and embedding layers with spectral normalisation, as SAGAN uses them.

SAGAN puts spectral normalisation (Miyato et al. 2018) on every convolution, linear layer and
embedding of both networks. These factories build the plain PyTorch module, initialise it as the
official code does (Glorot/Xavier uniform weights, zero biases), then register PyTorch's own
spectral-norm parametrization on its weight (as `torch.nn.utils.parametrizations.spectral_norm`
does, with autocast off inside it: `SpectralNorm`): `module.weight` is then
$W / \sigma(W)$, computed from `module.parametrizations.weight.original` ($W$) and the buffers
`_u`, `_v`. With `sn=False` they return the plain module (for the ablation without SN).

**Train vs eval.** PyTorch's parametrization runs one power-iteration step (updating `_u` and
`_v` in place) each time `.weight` is read *in training mode*, and none in eval mode, where
$\sigma = u^\top W v$ uses the stored vectors. So evaluation is deterministic and does not change
the model, and every training forward pass refines $\sigma$, which is all Algorithm 1 asks. The
official TensorFlow code also iterates in the generator's eval passes and BigGAN-PyTorch iterates
in eval without storing the result; with one step per training iteration the estimate has long
converged, so the three agree to within the power iteration's error. (Reading `.weight` more than
once per training forward runs more than one step; wrap such code in
`torch.nn.utils.parametrize.cached()`.)

**eps.** `SN_EPS = 1e-12`: norms are clamped below by it ($x / \max(\lVert x\rVert, \epsilon)$).
It is PyTorch's default and the value of the official code's `_l2normalize`, and the one
`reference.spectral_norm` uses, so layer and reference compare like with like. It only matters
for a vector of norm below $10^{-12}$, which a trained weight never produces; the parameters and
buffers stay float32 under mixed precision, where $10^{-12}$ is representable (BigGAN-PyTorch's
larger 1e-6 guards against fp16 weights, which this project does not use).

The tests (`tests/test_layers.py`) check these modules against `reference.spectral_norm`.
"""

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import _SpectralNorm

SN_EPS = 1e-12
SN_POWER_ITERATIONS = 1  # per training forward pass, as in the paper and the official code


class SpectralNorm(_SpectralNorm):
    r"""PyTorch's spectral-norm parametrization (what `spectral_norm()` registers), with its power
    iteration and $\sigma$ computed with autocast off: in the weight's own dtype (float32) under
    bf16 autocast too, inside the forward, so `torch.compile` traces them into the model's graph.
    Same buffers and state-dict keys as PyTorch's."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        device = weight.device.type
        if device not in ("cuda", "cpu"):  # e.g. meta tensors (FLOP counts): no autocast there
            return super().forward(weight)
        with torch.autocast(device, enabled=False):
            return super().forward(weight)


def _init_and_normalise(module: nn.Module, sn: bool) -> nn.Module:
    """Glorot-initialise the weight, zero the bias, then register spectral norm if `sn`."""
    nn.init.xavier_uniform_(module.weight)
    if getattr(module, "bias", None) is not None:
        nn.init.zeros_(module.bias)
    if not sn:
        return module
    # Constructing runs 15 power-iteration steps on the initial weight, so sigma starts accurate.
    norm = SpectralNorm(module.weight, n_power_iterations=SN_POWER_ITERATIONS, eps=SN_EPS)
    parametrize.register_parametrization(module, "weight", norm)
    return module


def sn_conv2d(
    in_ch: int,
    out_ch: int,
    kernel_size: int,
    stride: int = 1,
    padding: int = 0,
    bias: bool = True,
    *,
    sn: bool = True,
) -> nn.Conv2d:
    """`nn.Conv2d` whose weight, read as (out_ch, in_ch * k * k), is spectrally normalised."""
    conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=padding, bias=bias)
    return _init_and_normalise(conv, sn)


def sn_linear(in_f: int, out_f: int, bias: bool = True, *, sn: bool = True) -> nn.Linear:
    """`nn.Linear` with a spectrally normalised (out_f, in_f) weight."""
    return _init_and_normalise(nn.Linear(in_f, out_f, bias=bias), sn)


def sn_embedding(num: int, dim: int, *, sn: bool = True) -> nn.Embedding:
    """`nn.Embedding` whose (num, dim) table is spectrally normalised as one matrix."""
    return _init_and_normalise(nn.Embedding(num, dim), sn)
