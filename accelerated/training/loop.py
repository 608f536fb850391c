r"""The SAGAN training loop: hinge loss, TTUR, one D pass on real and fake together.

One **iteration** (step) is `d_steps` discriminator updates and one generator update:

- D step: fake images from G without gradients; **one** D forward on real and fake concatenated
  (so spectral-norm buffers move once per update, and DDP's buffer broadcast sees one forward);
  hinge loss $L_D$ (eq. 4); Adam with the fast learning rate.
- G step: new noise; D (frozen) scores G's images; $L_G = -\mathbb{E}[D(G(z), y)]$; Adam with the
  slow learning rate; then the EMA of G, if on.

Fault tolerance: a step whose loss or gradients are not finite is skipped (no optimiser update)
and counted; after `run.max_bad_steps` in a row the run rolls back to its newest checkpoint from
before that streak and draws fresh noise; after `run.max_rollbacks` it stops with
`TrainingError`. SIGTERM or SIGINT finishes the current step, saves a checkpoint and returns (all
ranks agree first). A checkpoint that cannot be written, or an evaluation that cannot be measured,
is reported and training goes on. A loaded checkpoint's optimiser state takes this run's learning
rates, betas and eps.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import signal
import time
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.nn.utils import parametrize
from tqdm.auto import tqdm

from accelerated.config import TrainConfig, to_dict, to_toml
from accelerated.data import open_dataset
from accelerated.models import attention_layers, build_models, named_attention_layers
from accelerated.ops import hinge_loss_discriminator, hinge_loss_generator
from accelerated.training import checkpoint, curves, figures
from accelerated.training.attention_report import REPORT_IMAGES, gammas, recording, twin_report
from accelerated.training.batches import (
    StepBatches,
    noise_generator,
    real_batches,
    sample_noise,
)
from accelerated.training.distributed import Context, all_ranks, any_rank, barrier
from accelerated.training.ema import EMA
from accelerated.training.evaluation import Evaluation
from accelerated.training.logging import MetricsLog, say
from accelerated.training.sampling import generate

NOISE_D, NOISE_G, NOISE_EVAL, NOISE_GRID = 0, 1, 2, 3


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. it kept diverging after every rollback)."""


def write_config(cfg: TrainConfig, run_dir: Path) -> None:
    """Write `cfg` as config.toml and config.json in `run_dir`, each by a rename, so a kill
    mid-write leaves the previous file."""
    texts = {"config.toml": to_toml(cfg), "config.json": json.dumps(to_dict(cfg), indent=2)}
    for name, text in texts.items():
        checkpoint.write_text_atomic(Path(run_dir) / name, text)


class StepLosses(Mapping):
    """One iteration's losses, read from the device only when first looked at (on log steps),
    so an iteration does not wait for the GPU to report them."""

    NAMES = ("loss_d", "loss_g", "d_real", "d_fake")

    def __init__(self, values: torch.Tensor):
        self._values, self._read = values, None

    def __getitem__(self, name: str) -> float:
        if self._read is None:
            self._read = dict(zip(self.NAMES, self._values.tolist(), strict=True))
        return self._read[name]

    def __iter__(self):
        return iter(self.NAMES)

    def __len__(self) -> int:
        return len(self.NAMES)


class Trainer:
    """Models, optimisers, data and the run folder of one training run on one rank.

    `run.bf16`, `run.channels_last` and fused Adam act on CUDA; `levers_anywhere=True` applies
    them on any device (CI runs the fast path's twin on a CPU that way)."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, ctx: Context, levers_anywhere=False):
        self.cfg, self.run_dir, self.ctx = cfg, Path(run_dir), ctx
        dev, o, r = ctx.device, cfg.optim, cfg.run
        self.cuda = dev.type == "cuda"
        levers = self.cuda or levers_anywhere
        self.bf16 = levers and r.bf16
        if self.cuda:
            torch.backends.cudnn.benchmark = True  # fixed shapes: cuDNN times its algorithms once
        self.dataset = open_dataset(cfg.data.source, cfg.model.resolution, cfg.data.cache_dir)
        if self.dataset.num_classes != cfg.model.num_classes and cfg.model.num_classes != 0:
            raise ValueError(
                f"the data set {cfg.data.source!r} has {self.dataset.num_classes} classes but "
                f"model.num_classes is {cfg.model.num_classes}: set model.num_classes = "
                f"{self.dataset.num_classes} (or 0 for an unconditional model)"
            )
        self.evaluation = Evaluation(cfg, self.run_dir, ctx, self.dataset)
        torch.manual_seed(r.seed)  # the same initial weights on every rank
        G, D = build_models(cfg.model)
        memory_format = torch.channels_last if (levers and r.channels_last) else None
        self.memory_format = memory_format or torch.contiguous_format
        self.G = G.to(dev, memory_format=self.memory_format)  # the plain modules
        self.D = D.to(dev, memory_format=self.memory_format)
        self.ema = EMA(self.G, o.ema_decay, o.ema_start) if o.ema else None
        betas = (o.beta1, o.beta2)
        fused = True if levers else None
        # --8<-- [start:ttur]
        # Two time-scale update rule: D learns 4x faster than G (4e-4 vs 1e-4), Adam beta1 0.
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=o.lr_g, betas=betas, eps=o.eps,
                                      fused=fused)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=o.lr_d, betas=betas, eps=o.eps,
                                      fused=fused)
        # --8<-- [end:ttur]
        self.G_train, self.D_train = self.G, self.D  # what the optimiser steps run through
        if ctx.distributed:
            ids = [dev.index] if self.cuda else None
            self.G_train = DDP(self.G, device_ids=ids)
            self.D_train = DDP(self.D, device_ids=ids)
        self.G_fake, self.D_score = self.G, self.D  # no-sync uses: fakes for D, scores for G
        if r.compile:  # static shapes: D sees 2B images in its step and B in G's, each its graph
            compiled = functools.partial(torch.compile, dynamic=False)
            self.G_train, self.D_train = compiled(self.G_train), compiled(self.D_train)
            self.G_fake, self.D_score = compiled(self.G), compiled(self.D)
        self.batch = o.batch_size // ctx.world_size  # per rank
        # a batch larger than the data set raises ValueError now, before anything is written
        StepBatches(self.dataset, self.batch, ctx.rank, ctx.world_size, r.seed)
        self.step = 0
        self.counters = {"skipped_d": 0, "skipped_g": 0, "rollbacks": 0}
        self.bad_in_a_row = 0
        self.stop_requested = False
        self.last_quality: dict[str, float] | None = None
        self.last_quality_step = 0
        self.last_grid: Path | None = None
        self.log = MetricsLog(self.run_dir, enabled=ctx.is_main)

    # -- state ---------------------------------------------------------------------------------

    def state(self) -> dict:
        """Everything a checkpoint holds besides step and format version."""
        return {
            "config": to_dict(self.cfg),
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "G_ema": self.ema.model.state_dict() if self.ema else None,
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict(),
            "rng": checkpoint.rng_state(),
            "counters": dict(self.counters),
            "best": self.evaluation.best,
        }

    def load(self, state: dict, path: Path) -> None:
        """Restore a checkpoint (checked for architecture first)."""
        checkpoint.check_compatible(state, to_dict(self.cfg), path)
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        if self.ema:
            self.ema.model.load_state_dict(state["G_ema"])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        self.apply_optimiser_settings()
        checkpoint.set_rng_state(state["rng"])
        self.counters.update(state["counters"])
        self.evaluation.restore(state.get("best"))
        self.step = state["step"]

    def apply_optimiser_settings(self) -> None:
        """This run's learning rates, betas and eps in the Adam param groups (a loaded state
        brings the ones it was saved with; a resume with new settings must train with them)."""
        o = self.cfg.optim
        for opt, lr in ((self.opt_G, o.lr_g), (self.opt_D, o.lr_d)):
            for group in opt.param_groups:
                group.update(lr=lr, betas=(o.beta1, o.beta2), eps=o.eps)

    def save(self) -> Path | None:
        """Write a checkpoint of the current step (rank 0); on OSError report it and go on."""
        path = None
        if self.ctx.is_main:
            # during a streak of non-finite steps, its checkpoints push out no older one: the
            # rollback goes back to one from before the streak
            keep = self.cfg.run.keep_checkpoints + self.bad_in_a_row
            try:
                path = checkpoint.save(self.run_dir, self.step, self.state(), keep)
            except OSError as err:
                found = checkpoint.newest_good(self.run_dir)
                kept = f"{found} is still usable" if found else "no earlier checkpoint exists"
                say(f"error: could not write the checkpoint of step {self.step} ({err}); {kept}")
                self.log.write(self.step, "event", {"checkpoint_failed": str(err)})
        barrier(self.ctx)
        return path

    def rollback(self) -> None:
        """Go back to the newest checkpoint from before the streak of non-finite steps."""
        rollbacks = self.counters["rollbacks"] + 1
        if rollbacks > self.cfg.run.max_rollbacks:
            raise TrainingError(
                f"training diverged: {self.bad_in_a_row} non-finite steps in a row at step "
                f"{self.step}, after {rollbacks - 1} rollbacks (run.max_rollbacks). Try lower "
                f"learning rates (optim.lr_d, optim.lr_g) or run.bf16 = false"
            )
        bad_at = self.step
        path, state = checkpoint.latest(self.run_dir, self.ctx.device, warn=say,
                                        at_most=self.step - self.bad_in_a_row)
        self.load(state, path)
        self.counters["rollbacks"] = rollbacks
        self.bad_in_a_row = 0
        if self.ctx.is_main:
            say(f"rollback {rollbacks}/{self.cfg.run.max_rollbacks}: {self.cfg.run.max_bad_steps} "
                f"non-finite steps in a row at step {bad_at}; back to {path} (step {self.step}) "
                f"with fresh noise")
        self.log.write(self.step, "event", {"rollback": rollbacks, "from_step": bad_at})

    # -- one iteration -------------------------------------------------------------------------

    @contextlib.contextmanager
    def autocast(self, *modules: nn.Module):
        """bfloat16 autocast (when `run.bf16`, on CUDA), for one forward pass of `modules`.

        Spectral norm is computed first, outside autocast, so its power iteration and sigma are
        float32; `parametrize.cached()` then hands those weights to the bf16 forward."""
        if not self.bf16:
            yield
            return
        with parametrize.cached():
            for module in modules:
                for sub in module.modules():
                    if parametrize.is_parametrized(sub):
                        for name in sub.parametrizations:
                            getattr(sub, name)  # computes and caches W / sigma(W)
            with torch.autocast(self.ctx.device.type, dtype=torch.bfloat16):
                yield

    def noise(self, purpose: int, index: int = 0):
        gen = noise_generator(self.ctx.device, self.cfg.run.seed, self.step, self.ctx.rank,
                              self.counters["rollbacks"], purpose, index)
        return sample_noise(gen, self.batch, self.cfg.model.z_dim, self.cfg.model.num_classes,
                            self.ctx.device)

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

    def d_step(self, real: torch.Tensor, y_real: torch.Tensor | None, index: int):
        z, y_fake = self.noise(NOISE_D, index)
        with torch.no_grad(), self.autocast(self.G):
            fake = self.G_fake(z, y_fake)
        x = torch.cat([real, fake.to(real.dtype)]).contiguous(memory_format=self.memory_format)
        y = torch.cat([y_real, y_fake]) if y_fake is not None else None
        with self.autocast(self.D):
            logits = self.D_train(x, y)  # (2B,): one pass on real and fake
        d_real, d_fake = logits.float().split(real.shape[0])
        loss = hinge_loss_discriminator(d_real, d_fake)
        self.opt_D.zero_grad(set_to_none=True)
        loss.backward()
        ok = self.finite(loss, self.D.parameters())
        self.step_if(self.opt_D, ok)
        return loss.detach(), d_real.detach().mean(), d_fake.detach().mean(), ok

    def g_step(self):
        z, y = self.noise(NOISE_G)
        self.D.requires_grad_(False)  # gradients flow through D to G's images only
        try:
            with self.autocast(self.G, self.D):
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

    def iteration(self, batches) -> StepLosses:
        """One training step: `d_steps` D updates and one G update; returns the losses."""
        oks = []
        for i in range(self.cfg.optim.d_steps):
            real, y_real = next(batches)
            real = real.to(self.ctx.device, non_blocking=True)
            y_real = y_real.to(self.ctx.device, non_blocking=True)
            if not self.cfg.model.conditional:
                y_real = None
            loss_d, d_real, d_fake, ok = self.d_step(real, y_real, i)
            oks.append(ok)
        loss_g, g_ok = self.g_step()
        # the one wait of an iteration: the skip counters and the rollback rule need the flags
        *d_oks, g_ok = torch.stack([*oks, g_ok]).tolist()
        self.counters["skipped_d"] += d_oks.count(False)
        self.counters["skipped_g"] += not g_ok
        if self.ema and g_ok:
            self.ema.update(self.G, self.step)
        self.bad_in_a_row = 0 if (all(d_oks) and g_ok) else self.bad_in_a_row + 1
        return StepLosses(torch.stack([loss_d, loss_g, d_real, d_fake]))

    # -- samples, figures, evaluation ----------------------------------------------------------

    def sampler(self) -> nn.Module:
        """The generator used for samples and evaluation: the EMA when on, else G."""
        return self.ema.model if self.ema else self.G

    def generate(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """Images of the sampling generator (its state is left untouched)."""
        G = self.sampler()
        return generate(G, z, y, autocast=functools.partial(self.autocast, G))

    def fixed_noise(self, purpose: int, n: int, classes: torch.Tensor | None):
        gen = noise_generator(self.ctx.device, self.cfg.run.seed, purpose)
        z = torch.randn(n, self.cfg.model.z_dim, generator=gen, device=self.ctx.device)
        return z, None if classes is None else classes.to(self.ctx.device)

    def grid_classes(self) -> torch.Tensor | None:
        """Rows of the sample grid: every class (at most 10, spread out), `grid_columns` each."""
        k = self.cfg.model.num_classes
        if k == 0:
            return None
        rows = torch.linspace(0, k - 1, min(k, 10)).round().long()
        return rows.repeat_interleave(self.cfg.run.grid_columns)

    def write_figures(self) -> None:
        """Sample grid and attention figures of the current step (rank 0)."""
        classes = self.grid_classes()
        n = len(classes) if classes is not None else 4 * self.cfg.run.grid_columns
        z, y = self.fixed_noise(NOISE_GRID, n, classes)
        G = self.sampler()
        layers = attention_layers(G)
        with recording(layers):
            images = self.generate(z, y)
            maps = [layer.last_attention for layer in layers]
        name = f"step-{self.step:08d}.png"
        self.last_grid = self.run_dir / "samples" / name
        self.last_grid.parent.mkdir(exist_ok=True)
        figures.grid(images, self.cfg.run.grid_columns).save(self.last_grid)
        # Attention: the first sample of each grid row (one per class), at most 4.
        picks = list(range(0, n, self.cfg.run.grid_columns))[:4]
        (self.run_dir / "attention").mkdir(exist_ok=True)
        for k, beta in enumerate(maps):
            side = math.isqrt(beta.shape[1])
            fig = figures.attention_figure(images[picks], beta[picks])
            fig.save(self.run_dir / "attention" / f"step-{self.step:08d}-G{k}-{side}x{side}.png")

    def evaluate(self) -> dict[str, float]:
        """Measure `eval_samples` samples from fixed noise (classes balanced), log the numbers,
        keep best.pt (rank 0; see `accelerated.training.evaluation`)."""
        n = self.cfg.run.eval_samples
        z, classes = self.fixed_noise(NOISE_EVAL, n, torch.arange(n) % self.dataset.num_classes)
        try:
            values = self.evaluation.measure(self.generate, z, classes)
            if self.cfg.data.source == "builtin":
                values.update(self.twin_attention())
        except (ValueError, torch.linalg.LinAlgError) as err:  # e.g. non-finite images
            reason = " ".join(str(err).split())
            say(f"warning: the evaluation of step {self.step} failed ({reason}); training goes on")
            self.log.write(self.step, "event", {"evaluation_failed": reason})
            return {}
        if values:
            self.log.write(self.step, "eval", values)
            self.last_quality, self.last_quality_step = values, self.step
            self.evaluation.keep_best(self.step, values, self.state)
            curves.draw(self.run_dir)
        return values

    def twin_attention(self) -> dict[str, float]:
        """Twin attention of every attention layer: G's on its samples, D's on real images."""
        n = min(REPORT_IMAGES, len(self.dataset))
        classes = torch.arange(n) % self.dataset.num_classes
        z, y = self.fixed_noise(NOISE_EVAL, n, classes if self.cfg.model.conditional else None)
        real, y_real = (torch.stack(t).to(self.ctx.device)
                        for t in zip(*(self.dataset[i] for i in range(n)), strict=True))
        layers = named_attention_layers(self.sampler(), self.D, self.cfg.model)
        return twin_report(layers, self.generate, z, y, self.D, real,
                           y_real if self.cfg.model.conditional else None)

    # -- the loop ------------------------------------------------------------------------------

    def _request_stop(self, signum, frame) -> None:
        if self.stop_requested and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        self.stop_requested = True
        if self.ctx.is_main:
            say(f"{signal.Signals(signum).name}: finishing this step, then saving a checkpoint")

    def write_config(self) -> None:
        """Write the run's config (rank 0); a resume records its overrides this way."""
        if self.ctx.is_main:
            write_config(self.cfg, self.run_dir)

    def start_new(self) -> None:
        """Write the config and the step-0 checkpoint of a new run (the first rollback target)."""
        self.write_config()
        self.save()

    def train(self) -> str:
        """Train to `run.steps`; returns "done" or "stopped" (by a signal, checkpoint saved)."""
        r = self.cfg.run
        signals = (signal.SIGTERM, signal.SIGINT)
        handlers = {s: signal.signal(s, self._request_stop) for s in signals}
        draws = self.step * self.cfg.optim.d_steps
        batches = real_batches(self.dataset, self.batch, self.ctx.rank, self.ctx.world_size,
                               r.seed, draws, self.cfg.data.workers, self.cuda)
        bar = tqdm(total=r.steps, initial=self.step, unit="it", dynamic_ncols=True, mininterval=1,
                   disable=not (self.ctx.is_main and r.progress), desc="training")
        outcome, start_time = "done", time.monotonic()
        try:
            while self.step < r.steps:
                losses = self.iteration(batches)
                self.step += 1
                bar.update(1)
                if self.bad_in_a_row >= r.max_bad_steps:
                    self.rollback()
                    bar.reset(total=r.steps)
                    bar.update(self.step)
                    batches = real_batches(self.dataset, self.batch, self.ctx.rank,
                                           self.ctx.world_size, r.seed,
                                           self.step * self.cfg.optim.d_steps,
                                           self.cfg.data.workers, self.cuda)
                    continue
                if self.step % r.log_every == 0 or self.step == r.steps:
                    attention = named_attention_layers(self.G, self.D, self.cfg.model)
                    self.log.write(self.step, "train",
                                   {**losses, **self.counters, **gammas(attention)})
                    bar.set_postfix(D=f"{losses['loss_d']:.3f}", G=f"{losses['loss_g']:.3f}")
                if self.ctx.is_main and (self.step % r.sample_every == 0 or self.step == r.steps):
                    self.write_figures()
                if self.ctx.is_main and (self.step % r.eval_every == 0 or self.step == r.steps):
                    self.evaluate()
                stop = any_rank(self.ctx, self.stop_requested)
                if stop or self.step % r.checkpoint_every == 0 or self.step == r.steps:
                    self.save()
                if stop:
                    outcome = "stopped"
                    break
        finally:
            bar.close()
            for s, h in handlers.items():
                signal.signal(s, h)
            self.log.close()
        self.elapsed = time.monotonic() - start_time
        return outcome
