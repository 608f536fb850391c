r"""What a run shows of itself (rank 0): sample grids, attention figures and evaluations.

Every image here comes from fixed noise (seeded by the run's seed and a purpose, never by the
step), so the grids of successive steps show one set of samples changing, and evaluations of
successive steps measure the same noise. The sampling generator is the EMA of G when the run
keeps one, else G; drawing leaves its state untouched (`accelerated.models.generate`).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from accelerated.cli import say
from accelerated.config import TrainConfig
from accelerated.figures import attention_figure, curves, grid
from accelerated.models import attention_layers, generate, named_attention_layers, sample_noise
from accelerated.training.attention_report import REPORT_IMAGES, recording, twin_report
from accelerated.training.batches import noise_generator
from accelerated.training.metrics_log import read_records

NOISE_EVAL, NOISE_GRID = 2, 3  # purposes, after the steps' NOISE_D and NOISE_G


def fixed_noise(cfg: TrainConfig, device: torch.device, purpose: int, n: int,
                classes: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The run's fixed noise for `purpose` (`NOISE_EVAL`, `NOISE_GRID`): n vectors z seeded by
    (run.seed, purpose) alone, with the labels `classes` (or None)."""
    gen = noise_generator(device, cfg.run.seed, purpose)
    return sample_noise(gen, n, cfg.model.z_dim, 0, device, classes=classes)


class Observer:
    """Figures and evaluations of one run, drawn with `sampler()` (the EMA of G, or G)."""

    def __init__(self, run):
        self.run = run  # the `accelerated.training.run.Run` observed
        self.last_quality: dict[str, float] | None = None
        self.last_quality_step = 0
        self.last_grid: Path | None = None

    def sampler(self) -> nn.Module:
        """The generator used for samples and evaluation: the EMA when on, else G."""
        return self.run.ema.model if self.run.ema else self.run.gan.G

    def generate(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """Images of the sampling generator (its state is left untouched)."""
        G = self.sampler()
        return generate(G, z, y, autocast=self.run.gan.autocast)

    def fixed_noise(self, purpose: int, n: int, classes: torch.Tensor | None):
        return fixed_noise(self.run.cfg, self.run.ctx.device, purpose, n, classes)

    def grid_classes(self) -> torch.Tensor | None:
        """Rows of the sample grid: every class (at most 10, spread out), `grid_columns` each."""
        k = self.run.cfg.model.num_classes
        if k == 0:
            return None
        rows = torch.linspace(0, k - 1, min(k, 10)).round().long()
        return rows.repeat_interleave(self.run.cfg.run.grid_columns)

    def write_figures(self) -> None:
        """Sample grid and attention figures of the current step."""
        columns, step, run_dir = self.run.cfg.run.grid_columns, self.run.step, self.run.run_dir
        classes = self.grid_classes()
        n = len(classes) if classes is not None else 4 * columns
        z, y = self.fixed_noise(NOISE_GRID, n, classes)
        layers = attention_layers(self.sampler())
        with recording(layers):
            images = self.generate(z, y)
            maps = [layer.last_attention for layer in layers]
        self.last_grid = run_dir / "samples" / f"step-{step:08d}.png"
        self.last_grid.parent.mkdir(exist_ok=True)
        grid(images, columns, warn=say).save(self.last_grid)
        # Attention: the first sample of each grid row (one per class), at most 4.
        picks = list(range(0, n, columns))[:4]
        (run_dir / "attention").mkdir(exist_ok=True)
        for k, beta in enumerate(maps):
            side = math.isqrt(beta.shape[1])
            figure = attention_figure(images[picks], beta[picks])
            figure.save(run_dir / "attention" / f"step-{step:08d}-G{k}-{side}x{side}.png")

    def evaluate(self) -> dict[str, float]:
        """Measure `eval_samples` samples from fixed noise (classes balanced), log the numbers,
        keep best.pt (see `accelerated.training.periodic_eval`)."""
        run, n = self.run, self.run.cfg.run.eval_samples
        z, classes = self.fixed_noise(NOISE_EVAL, n, torch.arange(n) % run.dataset.num_classes)
        try:
            values = run.evaluation.measure(self.generate, z, classes)
            if run.cfg.data.source == "builtin":
                values.update(self.twin_attention())
        except (ValueError, torch.linalg.LinAlgError, MemoryError, RuntimeError) as err:
            # non-finite images, a collapsed generator's covariance, or too little memory
            if isinstance(err, RuntimeError) and "allocate" not in str(err):
                raise
            reason = " ".join(str(err).split()) or type(err).__name__
            say(f"warning: the evaluation of step {run.step} failed ({reason}); training goes on")
            run.log.write(run.step, "event", {"evaluation_failed": reason})
            return {}
        if values:
            run.log.write(run.step, "eval", values)
            self.last_quality, self.last_quality_step = values, run.step
            run.evaluation.keep_best(run.step, values, run.state)
            curves.draw(read_records(run.run_dir), run.run_dir)
        return values

    def twin_attention(self) -> dict[str, float]:
        """Twin attention of every attention layer: G's on its samples, D's on real images."""
        run = self.run
        conditional = run.cfg.model.conditional
        n = min(REPORT_IMAGES, len(run.dataset))
        classes = torch.arange(n) % run.dataset.num_classes
        z, y = self.fixed_noise(NOISE_EVAL, n, classes if conditional else None)
        real, y_real = (torch.stack(t).to(run.ctx.device)
                        for t in zip(*(run.dataset[i] for i in range(n)), strict=True))
        layers = named_attention_layers(self.sampler(), run.gan.D, run.cfg.model)
        return twin_report(layers, self.generate, z, y, run.gan.D, real,
                           y_real if conditional else None)
