r"""A training run on one rank: the schedule around the GAN step, and what keeps it safe.

`Run.train` repeats `GANStep.iteration` (`accelerated.training.gan_step`) to `run.steps`, and
on its schedule logs the losses and each attention layer's gamma (`log_every`), writes sample
grids and attention figures (`sample_every`), evaluates and keeps best.pt (`eval_every`,
`accelerated.training.observe`), and saves a checkpoint (`checkpoint_every`, and at the end).

Fault tolerance: a step whose loss or gradients are not finite is skipped (no optimiser update)
and counted; after `run.max_bad_steps` in a row the run rolls back to its newest checkpoint from
before that streak and draws fresh noise; after `run.max_rollbacks` it stops with
`TrainingError`. SIGTERM or SIGINT finishes the current step, saves a checkpoint and returns (all
ranks agree first); a second Ctrl-C during that checkpoint waits for it to be written. A
checkpoint that cannot be written, or an evaluation that cannot be measured, is reported and
training goes on. A loaded checkpoint's optimiser state takes this run's learning rates, betas
and eps. Real batches and noise are functions of (seed, step, rank), so a resumed run continues
exactly where an uninterrupted one would be (`accelerated.training.batches`).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import torch
from tqdm import tqdm

from accelerated import checkpoint
from accelerated.backend import tune_for_fixed_shapes
from accelerated.cli import UserError, say
from accelerated.config import TrainConfig, to_dict, write_config
from accelerated.data import open_dataset
from accelerated.models import build_models, named_attention_layers, sample_noise
from accelerated.training.attention_report import gammas
from accelerated.training.batches import check_batch_fits, noise_generator, real_batches
from accelerated.training.distributed import Context, any_rank, barrier
from accelerated.training.ema import EMA
from accelerated.training.gan_step import GANStep
from accelerated.training.metrics_log import MetricsLog
from accelerated.training.observe import Observer
from accelerated.training.periodic_eval import Evaluation


class TrainingError(UserError, RuntimeError):
    """Training cannot go on (e.g. it kept diverging after every rollback)."""

    exit_code = 1


class Run:
    """Data, models, optimisers and the run folder of one training run on one rank."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, ctx: Context, levers_anywhere=False):
        self.cfg, self.run_dir, self.ctx = cfg, Path(run_dir), ctx
        tune_for_fixed_shapes(ctx.device)  # cudnn.benchmark on CUDA, as `bench step` does
        self.dataset = open_dataset(cfg.data.source, cfg.model.resolution, cfg.data.cache_dir)
        if self.dataset.num_classes != cfg.model.num_classes and cfg.model.num_classes != 0:
            raise ValueError(
                f"the data set {cfg.data.source!r} has {self.dataset.num_classes} classes but "
                f"model.num_classes is {cfg.model.num_classes}: set model.num_classes = "
                f"{self.dataset.num_classes} (or 0 for an unconditional model)"
            )
        self.batch = cfg.optim.batch_size // ctx.world_size  # per rank
        # a batch larger than the data set raises ValueError now, before anything is written
        check_batch_fits(self.dataset, self.batch, ctx.world_size)
        self.evaluation = Evaluation(cfg, self.run_dir, ctx, self.dataset)
        torch.manual_seed(cfg.run.seed)  # the same initial weights on every rank
        self.gan = GANStep(cfg, *build_models(cfg.model), ctx, levers_anywhere)
        o = cfg.optim
        self.ema = EMA(self.gan.G, o.ema_decay, o.ema_start) if o.ema else None
        self.observer = Observer(self)
        self.step = 0
        self.counters = {"skipped_d": 0, "skipped_g": 0, "rollbacks": 0}
        self.bad_in_a_row = 0
        self.stop_requested = False
        self.saving = False
        self.elapsed = 0.0
        self.log = MetricsLog(self.run_dir, enabled=ctx.is_main)

    # -- state ---------------------------------------------------------------------------------

    def state(self) -> dict:
        """Everything a checkpoint holds besides step and format version."""
        gan = self.gan
        return {
            "config": to_dict(self.cfg),
            "G": gan.G.state_dict(),
            "D": gan.D.state_dict(),
            "G_ema": self.ema.model.state_dict() if self.ema else None,
            "opt_G": gan.opt_G.state_dict(),
            "opt_D": gan.opt_D.state_dict(),
            "rng": checkpoint.rng_state(),
            "counters": dict(self.counters),
            "best": self.evaluation.best,
        }

    def load(self, state: dict, path: Path) -> None:
        """Restore a checkpoint of this run (`checkpoint.check_compatible` has passed: a resume
        checks its checkpoint before anything is built, and a rollback's comes from the run)."""
        gan = self.gan
        gan.G.load_state_dict(state["G"])
        gan.D.load_state_dict(state["D"])
        if self.ema:
            self.ema.model.load_state_dict(state["G_ema"])
        gan.opt_G.load_state_dict(state["opt_G"])
        gan.opt_D.load_state_dict(state["opt_D"])
        gan.apply_optimiser_settings()
        checkpoint.set_rng_state(state["rng"])
        self.counters.update(state["counters"])
        self.evaluation.restore(state.get("best"))
        self.step = state["step"]
        gan.last_r1 = None  # a penalty from after this step's state is not this run's

    def save(self) -> Path | None:
        """Write a checkpoint of the current step (rank 0); on OSError report it and go on."""
        path = None
        if self.ctx.is_main:
            # during a streak of non-finite steps, its checkpoints push out no older one: the
            # rollback goes back to one from before the streak
            keep = self.cfg.run.keep_checkpoints + self.bad_in_a_row
            self.saving = True
            try:
                path = checkpoint.save(self.run_dir, self.step, self.state(), keep)
            except OSError as err:
                found = checkpoint.newest_good(self.run_dir)
                kept = f"{found} is still usable" if found else "no earlier checkpoint exists"
                say(f"error: could not write the checkpoint of step {self.step} ({err}); {kept}")
                self.log.write(self.step, "event", {"checkpoint_failed": str(err)})
            finally:
                self.saving = False
        barrier(self.ctx)
        return path

    def rollback(self) -> None:
        """Go back to the newest checkpoint from before the streak of non-finite steps."""
        rollbacks = self.counters["rollbacks"] + 1
        r = self.cfg.run
        if rollbacks > r.max_rollbacks:
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
            say(f"rollback {rollbacks}/{r.max_rollbacks}: {r.max_bad_steps} non-finite steps in "
                f"a row at step {bad_at}; back to {path} (step {self.step}) with fresh noise")
        self.log.write(self.step, "event", {"rollback": rollbacks, "from_step": bad_at})

    def start_new(self) -> None:
        """Write the config and the step-0 checkpoint of a new run (the first rollback target)."""
        self.write_config()
        self.save()

    def write_config(self) -> None:
        """Write the run's config (rank 0); a resume records its overrides this way."""
        if self.ctx.is_main:
            write_config(self.cfg, self.run_dir)

    # -- the loop ------------------------------------------------------------------------------

    def noise(self, purpose: int, index: int = 0):
        """(z, y) of this step's D step `index` or G step: a function of (seed, step, rank,
        rollbacks, purpose, index), so a resumed run draws what an uninterrupted one would."""
        c, m = self.ctx, self.cfg.model
        gen = noise_generator(c.device, self.cfg.run.seed, self.step, c.rank,
                              self.counters["rollbacks"], purpose, index)
        return sample_noise(gen, self.batch, m.z_dim, m.num_classes, c.device)

    def batches(self):
        """This rank's real batches from the current step on."""
        r = self.cfg.run
        return real_batches(self.dataset, self.batch, self.ctx.rank, self.ctx.world_size, r.seed,
                            self.step * self.cfg.optim.d_steps, self.cfg.data.workers,
                            self.ctx.device.type == "cuda")

    def _request_stop(self, signum, frame) -> None:
        if self.stop_requested and signum == signal.SIGINT:
            if not self.saving:
                raise KeyboardInterrupt  # a second Ctrl-C stops at once
            say("SIGINT: a checkpoint is being written; stopping as soon as it is")
            return
        self.stop_requested = True
        if self.ctx.is_main:
            say(f"{signal.Signals(signum).name}: finishing this step, then saving a checkpoint")

    def iteration(self, batches) -> dict[str, float]:
        """One GAN step; counts its skipped updates; returns its losses."""
        losses, d_oks, g_ok = self.gan.iteration(batches, self.noise, self.step)
        self.counters["skipped_d"] += d_oks.count(False)
        self.counters["skipped_g"] += not g_ok
        if self.ema and g_ok:
            self.ema.update(self.gan.G, self.step)
        self.bad_in_a_row = 0 if (all(d_oks) and g_ok) else self.bad_in_a_row + 1
        return losses

    def due(self, every: int) -> bool:
        return self.step % every == 0 or self.step == self.cfg.run.steps

    def train(self) -> str:
        """Train to `run.steps`; returns "done" or "stopped" (by a signal, checkpoint saved)."""
        r, main = self.cfg.run, self.ctx.is_main
        handlers = {s: signal.signal(s, self._request_stop) for s in (signal.SIGTERM,
                                                                       signal.SIGINT)}
        batches = self.batches()
        bar = tqdm(total=r.steps, initial=self.step, unit="it", dynamic_ncols=True, mininterval=1,
                   disable=not (main and r.progress), desc="training")
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
                    batches = self.batches()
                    continue
                if self.due(r.log_every):
                    attention = named_attention_layers(self.gan.G, self.gan.D, self.cfg.model)
                    self.log.write(self.step, "train",
                                   {**losses, **self.counters, **gammas(attention)})
                    bar.set_postfix(D=f"{losses['loss_d']:.3f}", G=f"{losses['loss_g']:.3f}")
                if main and self.due(r.sample_every):
                    self.observer.write_figures()
                if main and self.due(r.eval_every):
                    self.observer.evaluate()
                stop = any_rank(self.ctx, self.stop_requested)
                if stop or self.due(r.checkpoint_every):
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
