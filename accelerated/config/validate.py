"""Settings that cannot run together: `validate` raises one `ConfigError` naming the fields and
what to do (each field's type is checked when it is set, in `accelerated.config.build`)."""

from __future__ import annotations

import math

from accelerated.cli import SEED_LIMIT
from accelerated.config.build import ConfigError
from accelerated.config.schema import TrainConfig

MAX_EVAL_SAMPLES = 100_000  # an evaluation holds its samples in memory; FID's standard is 50,000


def validate(cfg: TrainConfig, world_size: int = 1) -> None:
    """Raise ConfigError for settings that cannot run together (each field's type is checked
    when it is set)."""
    o, r = cfg.optim, cfg.run
    checks = [
        (o.batch_size >= 1, "optim.batch_size must be at least 1"),
        (o.batch_size % world_size == 0,
         f"optim.batch_size {o.batch_size} does not divide by the {world_size} ranks: "
         f"use a multiple of {world_size}"),
        (0 < o.lr_g < math.inf and 0 < o.lr_d < math.inf,
         "optim.lr_g and optim.lr_d must be positive and finite"),
        (0 <= o.beta1 < 1 and 0 <= o.beta2 < 1, "optim.beta1 and optim.beta2 must lie in [0, 1)"),
        (0 < o.eps < math.inf, "optim.eps must be positive and finite"),
        (o.d_steps >= 1, "optim.d_steps must be at least 1"),
        (0 <= o.r1_gamma < math.inf, "optim.r1_gamma must be at least 0 and finite"),
        (o.r1_every >= 1, "optim.r1_every must be at least 1"),
        (o.r1_gamma == 0 or not r.compile,
         "optim.r1_gamma needs a second derivative of D, which torch.compile does not give: "
         "set run.compile = false, or optim.r1_gamma = 0"),
        (0 <= o.ema_decay < 1, "optim.ema_decay must lie in [0, 1)"),
        (o.ema_start >= 0, "optim.ema_start must be at least 0"),
        (r.steps >= 1, "run.steps must be at least 1"),
        (0 <= r.seed < SEED_LIMIT, "run.seed must lie in [0, 2**63)"),
        (r.device in ("auto", "cpu", "cuda"), "run.device must be 'auto', 'cpu' or 'cuda'"),
        (min(r.log_every, r.sample_every, r.eval_every, r.checkpoint_every) >= 1,
         "run.log_every, sample_every, eval_every and checkpoint_every must be at least 1"),
        (r.eval_samples >= 1 and r.grid_columns >= 1,
         "run.eval_samples and run.grid_columns must be at least 1"),
        (r.eval_samples <= MAX_EVAL_SAMPLES,
         f"run.eval_samples {r.eval_samples} is more than an evaluation needs (FID's standard is "
         f"50,000), and an evaluation holds all its samples in memory: use at most "
         f"{MAX_EVAL_SAMPLES:,}"),
        (r.eval_metrics == "none" or r.eval_samples >= 10,  # the Inception Score's 10 splits
         "run.eval_samples must be at least 10 for FID and KID: raise it, or set "
         "run.eval_metrics = 'none'"),
        (r.inception_weights is None or r.eval_metrics == "inception",
         "run.inception_weights only applies with run.eval_metrics = 'inception'"),
        (r.best_metric not in ("fid", "kid") or r.eval_metrics != "none",
         f"run.best_metric = {r.best_metric!r} needs run.eval_metrics 'offline' or 'inception' "
         f"(not 'none')"),
        (r.best_metric != "score" or (cfg.data.source == "builtin" and cfg.model.conditional),
         "run.best_metric = 'score' needs the built-in data set and a class-conditional model: "
         "use 'fid' or 'kid' otherwise"),
        (r.keep_checkpoints >= 1, "run.keep_checkpoints must be at least 1"),
        (r.max_bad_steps >= 1 and r.max_rollbacks >= 0,
         "run.max_bad_steps must be at least 1 and run.max_rollbacks at least 0"),
        (cfg.data.workers >= 0, "data.workers must be at least 0"),
        ("/" not in r.name and r.name not in (".", ".."), "run.name must be a plain folder name"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
