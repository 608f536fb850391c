"""The project's real `Trainer` for benchmarks, fed synthetic batches that sit on the device.

The Trainer opens its data set when it is built; a benchmark of the training step must not read
data, so `synthetic_trainer` points it at a placeholder prepared set (one batch of black images,
the preset's class names) in a scratch folder, and `synthetic_batches` hands `Trainer.iteration` the
same device-resident real batch every time, so no loading or host-to-device copy is timed.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import torch

from accelerated import config as C
from accelerated.data.arrays import save_arrays
from accelerated.training.distributed import Context
from accelerated.training.loop import Trainer


def config(preset: str, batch: int | None = None, overrides: dict | None = None) -> C.TrainConfig:
    """The preset's training config at global batch `batch` (None: the preset's), with
    `overrides` ({"run.bf16": False})."""
    sizes = {} if batch is None else {"optim.batch_size": batch}
    cfg = C.build(preset, overrides={**sizes, **(overrides or {})})
    C.validate(cfg)
    return cfg


def placeholder_data(folder: Path, resolution: int, num_classes: int, count: int) -> Path:
    """A prepared data set of `count` black images with `num_classes` class names, for the
    Trainer to open (the benchmarks never read its images)."""
    images = np.zeros((count, resolution, resolution, 3), np.uint8)
    names = [f"class{k}" for k in range(max(num_classes, 1))]
    save_arrays(folder, images, np.zeros(count, np.int64), names, source="bench placeholder")
    return folder


def synthetic_trainer(
    cfg: C.TrainConfig, device: torch.device, workdir: Path, levers_anywhere: bool = False
) -> Trainer:
    """`Trainer(cfg)` on `device` (one rank), its run folder and data set under `workdir`
    (`levers_anywhere`: bf16, channels-last and fused Adam on any device, see `Trainer`)."""
    data = Path(workdir) / "data"
    if not data.exists():
        placeholder_data(data, cfg.model.resolution, cfg.model.num_classes, cfg.optim.batch_size)
    cfg = C.merge(cfg, {"data": {"source": str(data)}}, "benchmark")
    run_dir = Path(workdir) / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(cfg, run_dir, Context(0, 1, device), levers_anywhere)
    trainer.log.close()  # the benchmark writes no metrics
    return trainer


def synthetic_batches(cfg: C.TrainConfig, device: torch.device, seed: int = 0):
    """Endlessly the same batch (images (B, 3, R, R) in [-1, 1], labels (B,)) on `device`."""
    g = torch.Generator().manual_seed(seed)
    R, B = cfg.model.resolution, cfg.optim.batch_size
    images = torch.rand(B, 3, R, R, generator=g) * 2 - 1
    labels = torch.randint(max(cfg.model.num_classes, 1), (B,), generator=g)
    return itertools.repeat((images.to(device), labels.to(device)))
