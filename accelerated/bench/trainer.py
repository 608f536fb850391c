"""The project's real GAN step (`accelerated.training.gan_step.GANStep`) for benchmarks, fed
synthetic batches and noise that sit on the device, so no data is read and no host-to-device copy
is timed: `synthetic_step(synthetic_gan(cfg, device))` returns a function running one iteration.
"""

from __future__ import annotations

import itertools

import torch

from accelerated import config as C
from accelerated.backend import tune_for_fixed_shapes
from accelerated.models import build_models, sample_noise
from accelerated.training.distributed import Context
from accelerated.training.gan_step import GANStep


def config(preset: str, batch: int | None = None, overrides: dict | None = None) -> C.TrainConfig:
    """The preset's training config at global batch `batch` (None: the preset's), with
    `overrides` ({"run.bf16": False})."""
    sizes = {} if batch is None else {"optim.batch_size": batch}
    cfg = C.build(preset, overrides={**sizes, **(overrides or {})})
    C.validate(cfg)
    return cfg


def synthetic_gan(cfg: C.TrainConfig, device: torch.device,
                  levers_anywhere: bool = False) -> GANStep:
    """`GANStep(cfg)` on `device` (one rank), with the run's initial weights and cuDNN set up as
    training sets it (`levers_anywhere`: bf16, channels-last and fused Adam on any device, see
    `GANStep`)."""
    tune_for_fixed_shapes(device)  # as training does
    torch.manual_seed(cfg.run.seed)
    return GANStep(cfg, *build_models(cfg.model), Context(0, 1, device), levers_anywhere)


def synthetic_step(gan: GANStep, seed: int = 0, first_step: int = 0):
    """A function running one `gan.iteration` on the same real batch and noise every time
    (images (B, 3, R, R) in [-1, 1], labels (B,), z, y, all on the device); it returns what the
    iteration does: (losses, D steps applied, G step applied). Iterations are numbered from
    `first_step`."""
    cfg, device = gan.cfg, gan.ctx.device
    g = torch.Generator().manual_seed(seed)
    R, B, m = cfg.model.resolution, cfg.optim.batch_size, cfg.model
    images = torch.rand(B, 3, R, R, generator=g) * 2 - 1
    labels = torch.randint(max(m.num_classes, 1), (B,), generator=g)
    batches = itertools.repeat((images.to(device), labels.to(device)))
    z, y = sample_noise(g, B, m.z_dim, m.num_classes, torch.device("cpu"))
    noise = (z.to(device), None if y is None else y.to(device))
    steps = itertools.count(first_step)
    return lambda: gan.iteration(batches, lambda purpose, index: noise, next(steps))
