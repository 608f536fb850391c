r"""One SAGAN training iteration: the hinge loss with TTUR, as in the paper's training loop.

```text
for each iteration:
    repeat d_steps times:                                        # D step
        x, y   <- a real batch;  z ~ N(0, I), y' ~ U(classes)
        L_D    =  E[max(0, 1 - D(x, y))] + E[max(0, 1 + D(G(z, y'), y'))]     (eq. 4)
        D      <- Adam(lr_d, beta1 = 0, beta2)                   # the fast time scale
    z ~ N(0, I), y ~ U(classes)                                  # G step
    L_G = -E[D(G(z, y), y)]                                      (eq. 4)
    G   <- Adam(lr_g, beta1 = 0, beta2)                          # the slow time scale
```

`GANStep` holds what this loop needs and nothing else: G and D, their two Adam optimisers and
the wrappers the passes run through (DDP across ranks, `torch.compile`). Where the code departs
from the text above, it says why:

- the D step runs **one** D forward on real and fake concatenated, so spectral norm's power
  iteration moves once per update and DDP's buffer broadcast sees one forward;
- fakes for D come from G without gradients, and D is frozen during the G step, so each loss
  reaches only its own network's weights;
- with `optim.r1_gamma` > 0, D's loss gains the R1 penalty $\frac{\gamma}{2}
  \mathbb{E}\lVert \nabla_x D(x) \rVert^2$ on the real half of that same pass (not in the
  paper; `accelerated.ops.r1`), every `optim.r1_every`-th iteration, times `r1_every`;
- a step whose loss or gradients are not finite (on any rank) is not applied: fused Adam skips
  it on the device, another optimiser is skipped on the host. The caller counts the skips.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Mapping

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from accelerated.backend import force_backend
from accelerated.config import TrainConfig
from accelerated.ops import (
    force_route,
    hinge_loss_discriminator,
    hinge_loss_generator,
    r1_penalty,
)
from accelerated.training.distributed import Context, all_ranks

NOISE_D, NOISE_G = 0, 1  # the purposes of a step's noise (see `accelerated.training.run`)

Noise = Callable[[int, int], tuple[torch.Tensor, torch.Tensor | None]]  # (purpose, index) -> z, y


class StepLosses(Mapping):
    """One iteration's losses, read from the device only when first looked at (on log steps),
    so an iteration does not wait for the GPU to report them. With the R1 penalty on, `r1` (the
    mean squared gradient norm, before gamma / 2) is there once an iteration has computed it:
    the latest one's (lazy R1 computes it every `optim.r1_every` iterations). `loss_d` is the
    hinge loss alone."""

    NAMES = ("loss_d", "loss_g", "d_real", "d_fake", "r1")

    def __init__(self, values: torch.Tensor):
        self._values, self._read = values, None
        self._names = self.NAMES[: len(values)]

    def __getitem__(self, name: str) -> float:
        if self._read is None:
            self._read = dict(zip(self._names, self._values.tolist(), strict=True))
        return self._read[name]

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class GANStep:
    """G, D, their optimisers and wrappers; `iteration` is one step of the loop above.

    `run.bf16`, `run.channels_last` and (unless set) `run.fused_adam` act on CUDA
    (`levers_anywhere`: on any device, as CI runs the fast path's twin on a CPU);
    `run.attention_route` and `run.backend` choose how attention and the losses are computed."""

    def __init__(self, cfg: TrainConfig, G: nn.Module, D: nn.Module, ctx: Context,
                 levers_anywhere: bool = False):
        self.cfg, self.ctx = cfg, ctx
        o, r = cfg.optim, cfg.run
        levers = ctx.device.type == "cuda" or levers_anywhere
        self.bf16 = levers and r.bf16
        self.memory_format = (torch.channels_last if levers and r.channels_last
                              else torch.contiguous_format)
        self.G = G.to(ctx.device, memory_format=self.memory_format)  # the plain modules
        self.D = D.to(ctx.device, memory_format=self.memory_format)
        # fused=None: PyTorch's default implementation
        fused = True if (levers if r.fused_adam is None else r.fused_adam) else None
        # --8<-- [start:ttur]
        # Two time-scale update rule: D learns faster than G (optim.lr_d vs optim.lr_g, 4:1 as
        # the paper's 4e-4 and 1e-4), Adam with beta1 = 0.
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=o.lr_g, betas=(o.beta1, o.beta2),
                                      eps=o.eps, fused=fused)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=o.lr_d, betas=(o.beta1, o.beta2),
                                      eps=o.eps, fused=fused)
        # --8<-- [end:ttur]
        G_train, D_train = self.G, self.D  # what the optimiser steps run through
        if ctx.distributed:
            ids = [ctx.device.index] if ctx.device.type == "cuda" else None
            G_train, D_train = DDP(self.G, device_ids=ids), DDP(self.D, device_ids=ids)
        G_fake, D_score = self.G, self.D  # no-sync uses: fakes for D, scores for G
        if r.compile:  # static shapes: D sees 2B images in its step and B in G's, each its graph
            wrap = functools.partial(torch.compile, dynamic=False,
                                     mode=None if r.compile_mode == "default" else r.compile_mode)
            G_train, D_train, G_fake, D_score = map(wrap, (G_train, D_train, self.G, self.D))
        self.G_train, self.D_train, self.G_fake, self.D_score = G_train, D_train, G_fake, D_score
        self.last_r1: torch.Tensor | None = None  # the latest R1 (lazy R1 skips iterations)
        auto = {"auto": None}
        self.route = auto.get(r.attention_route, r.attention_route)
        self.backend = auto.get(r.backend, r.backend)

    def apply_optimiser_settings(self) -> None:
        """The config's learning rates, betas and eps in the Adam param groups (a loaded state
        brings the ones it was saved with; a resume with new settings must train with them)."""
        o = self.cfg.optim
        for opt, lr in ((self.opt_G, o.lr_g), (self.opt_D, o.lr_d)):
            for group in opt.param_groups:
                group.update(lr=lr, betas=(o.beta1, o.beta2), eps=o.eps)

    def autocast(self) -> contextlib.AbstractContextManager:
        """bfloat16 autocast (when `bf16`) for a forward pass. Spectral norm turns
        autocast off inside itself (`layers.SpectralNorm`), so its power iteration and sigma stay
        float32 and compile into the same graph as the forward."""
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.ctx.device.type, dtype=torch.bfloat16)

    def finite(self, loss: torch.Tensor, params) -> torch.Tensor:
        """Whether the loss and all gradients are finite, on every rank: a 0-d bool tensor on
        the device, computed without waiting for it."""
        grads = [p.grad for p in params if p.grad is not None]
        norms = [loss.detach().float()] + [n.float() for n in torch._foreach_norm(grads)]
        return all_ranks(self.ctx, torch.isfinite(torch.stack(norms)).all())

    @staticmethod
    def step_if(opt: torch.optim.Optimizer, ok: torch.Tensor) -> None:
        """`opt.step()` where `ok`: fused Adam skips the update on the device (its `found_inf`,
        as under a GradScaler); another optimiser waits for `ok`."""
        if opt.defaults.get("fused"):
            opt.found_inf = (~ok).float()  # 0-d: the fused step subtracts it from its 0-d counts
            opt.step()
        elif ok:
            opt.step()

    def d_step(self, real: torch.Tensor, y_real: torch.Tensor | None, z: torch.Tensor,
               y_fake: torch.Tensor | None, r1_weight: float):
        """One D update on a real batch and G(z, y_fake), with `r1_weight` times the R1 penalty
        (0: none); (hinge loss, mean D(real), mean D(fake), R1's mean squared gradient norm or
        None, finite flag), on the device."""
        with torch.no_grad(), self.autocast():
            fake = self.G_fake(z, y_fake)
        if r1_weight:
            real = real.detach().requires_grad_()
        x = torch.cat([real, fake.to(real.dtype)]).contiguous(memory_format=self.memory_format)
        y = torch.cat([y_real, y_fake]) if y_fake is not None else None
        # R1 differentiates D twice: the readable route is the one attention route whose
        # backward can be differentiated again on every device (not the kernel's, nor fused SDPA)
        with self.autocast(), force_route("readable") if r1_weight else contextlib.nullcontext():
            logits = self.D_train(x, y)  # (2B,): one pass on real and fake
        d_real, d_fake = logits.float().split(real.shape[0])
        loss = total = hinge_loss_discriminator(d_real, d_fake)
        r1 = None
        if r1_weight:
            r1 = r1_penalty(d_real, real)
            total = loss + r1_weight * r1
        self.opt_D.zero_grad(set_to_none=True)
        total.backward()
        ok = self.finite(total, self.D.parameters())
        self.step_if(self.opt_D, ok)
        r1 = None if r1 is None else r1.detach()
        return loss.detach(), d_real.detach().mean(), d_fake.detach().mean(), r1, ok

    def g_step(self, z: torch.Tensor, y: torch.Tensor | None):
        """One G update through the frozen D; (loss, finite flag) on the device."""
        self.D.requires_grad_(False)  # gradients flow through D to G's images only
        try:
            with self.autocast():
                fake = self.G_train(z, y).contiguous(memory_format=self.memory_format)
                logits = self.D_score(fake, y)
            loss = hinge_loss_generator(logits.float())
            self.opt_G.zero_grad(set_to_none=True)
            loss.backward()
        finally:
            self.D.requires_grad_(True)
        ok = self.finite(loss, self.G.parameters())
        self.step_if(self.opt_G, ok)
        return loss.detach(), ok

    def iteration(self, batches: Iterator, noise: Noise,
                  step: int) -> tuple[StepLosses, list[bool], bool]:
        """Iteration number `step` (0 for the first): `d_steps` D updates on batches from
        `batches`, then one G update, with noise from `noise(purpose, index)`; returns (losses,
        which D updates were applied, whether G's was)."""
        o = self.cfg.optim
        r1_due = o.r1_gamma > 0 and step % o.r1_every == 0
        r1_weight = o.r1_gamma / 2 * o.r1_every if r1_due else 0.0
        d_oks = []
        with force_route(self.route), force_backend(self.backend):
            for i in range(o.d_steps):
                real, y_real = next(batches)
                real = real.to(self.ctx.device, non_blocking=True)
                y_real = y_real.to(self.ctx.device, non_blocking=True)
                z, y_fake = noise(NOISE_D, i)
                loss_d, d_real, d_fake, r1, ok = self.d_step(
                    real, y_real if self.cfg.model.conditional else None, z, y_fake, r1_weight)
                d_oks.append(ok)
            z, y = noise(NOISE_G, 0)
            loss_g, g_ok = self.g_step(z, y)
        # the one wait of an iteration: the skip counters and the rollback rule need the flags
        *d_oks, g_ok = torch.stack([*d_oks, g_ok]).tolist()
        if r1_due:
            self.last_r1 = r1
        values = [loss_d, loss_g, d_real, d_fake] + ([] if self.last_r1 is None else [self.last_r1])
        return StepLosses(torch.stack(values)), d_oks, g_ok
