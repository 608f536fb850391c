r"""A training run's periodic evaluation, and its best checkpoint.

Every `run.eval_every` steps (and at the last step) rank 0 draws `run.eval_samples` images from
fixed noise, classes balanced, with the sampling generator (the EMA when on), and measures:

- `fid`, `kid`, `kid_std` (`run.eval_metrics`): FID and KID against the training data, in the
  offline random feature space (`"offline"`) or the standard FID Inception (`"inception"`, which
  adds `inception_score` where torch-fidelity runs). The data set's reference features are
  computed at the first evaluation and cached under `data.cache_dir/metrics/`: the same file
  `python -m accelerated.evaluate` reads (`accelerated.metrics.distances`). KID averages
  `distances.KID_SUBSETS_TRAINING` random subsets (the evaluate command: 100), which keeps an
  evaluation to seconds on a CPU (the offline features; the Inception takes a few images per
  second per core there);
- on the built-in data set, its exact quality measure (`accelerated.data.builtin.quality`).

When `run.best_metric` improves (`"fid"`, `"kid"`: lower is better; `"score"`: higher), the
step's checkpoint is written as `best.pt` in the run folder and `best.json` records metric, value
and step. The record also goes into every checkpoint (`best`); a resumed run (or a rollback)
keeps the better of that and `best.json`, so it never replaces a better `best.pt` with a worse
one. Values count as comparable only when measured the same way (metric, feature network,
number of samples); after a change of those the next evaluation starts a new best.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from accelerated import checkpoint
from accelerated.cli import say
from accelerated.config import TrainConfig
from accelerated.data import builtin
from accelerated.files import write_text_atomic
from accelerated.metrics import distances, feature_network
from accelerated.metrics.features import InceptionWeightsError
from accelerated.training.distributed import Context, broadcast

FEATURE_BATCH = 256  # images per pass of the feature network
LOWER_IS_BETTER = {"fid": True, "kid": True, "score": False}
BEST_RECORD = "best.json"


class Evaluation:
    """The periodic evaluation of one run. Every rank builds it (the feature network is built on
    rank 0, and an error there stops every rank); only rank 0 measures and keeps best.pt."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, ctx: Context, dataset):
        self.cfg, self.run_dir, self.ctx, self.dataset = cfg, Path(run_dir), ctx, dataset
        r = cfg.run
        self.net, self.reference, error = None, None, None
        if ctx.is_main and r.eval_metrics != "none":
            try:
                net = feature_network(r.eval_metrics, r.inception_weights)
                self.net = net.to(ctx.device).eval()
                if net.note:
                    say(f"note: {net.note}")
            except (ImportError, ValueError, InceptionWeightsError) as err:
                error = f"run.eval_metrics = {r.eval_metrics!r}: {err}"
        error = broadcast(ctx, error)
        if error:
            raise ValueError(error)
        measured_by = self.net.name if r.best_metric in ("fid", "kid") and self.net else "quality"
        self.measured_with = f"{measured_by}, {r.eval_samples} samples"
        self.best: dict | None = self.read_best() if ctx.is_main else None

    # -- measuring -----------------------------------------------------------------------------

    @torch.no_grad()
    def measure(self, draw, z: torch.Tensor, classes: torch.Tensor) -> dict[str, float]:
        """The numbers of the images `draw(z, y)` makes from noise z (n, z_dim), with labels y =
        `classes` (n,) for a class-conditional model, else None."""
        y = classes if self.cfg.model.conditional else None
        builtin_data = self.cfg.data.source == "builtin"
        values, images = {}, None
        if self.net is not None:
            fake, images = distances.generated_features(
                draw, z, y, self.net, FEATURE_BATCH, len(z) if builtin_data else 0
            )
            values = self.distances(fake)
        if builtin_data:
            quality = builtin.quality(draw(z, y) if images is None else images, classes)
            if y is None:  # the requested class means nothing to an unconditional model
                quality = {k: v for k, v in quality.items() if k not in ("class_match", "score")}
            values = {**quality, **values}
        return values

    def distances(self, fake: distances.Features) -> dict[str, float]:
        """FID, KID (and IS) against the training data (its reference computed once, cached)."""
        if self.reference is None:
            d = self.cfg.data
            self.reference, _ = distances.for_dataset(
                self.dataset, d.source, self.cfg.model.resolution, Path(d.cache_dir).expanduser(),
                self.net, FEATURE_BATCH, self.ctx.device,
            )
        found = distances.compare(self.reference, fake, distances.KID_SUBSETS_TRAINING)
        values = {"fid": found["fid"], "kid": found["kid"]["mean"], "kid_std": found["kid"]["std"]}
        if "inception_score" in found:
            values["inception_score"] = found["inception_score"]["mean"]
            values["inception_score_std"] = found["inception_score"]["std"]
        return values

    # -- the best checkpoint -------------------------------------------------------------------

    def better(self, value: float, than: float) -> bool:
        lower = LOWER_IS_BETTER[self.cfg.run.best_metric]
        return value < than if lower else value > than

    def comparable(self, record) -> dict | None:
        """`record` if it is a best record measured as this run measures, else None."""
        ok = (isinstance(record, dict) and record.get("metric") == self.cfg.run.best_metric
              and record.get("measured_with") == self.measured_with
              and isinstance(record.get("value"), float) and math.isfinite(record["value"]))
        return record if ok else None

    def read_best(self) -> dict | None:
        """The record of the run's best.pt, from best.json (None for a new run)."""
        path = self.run_dir / BEST_RECORD
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            say(f"warning: ignoring {path} ({err}); the next evaluation starts a new best.pt")
            return None
        if self.comparable(record) is None:
            say(f"note: {path} was measured differently ({record}); the next evaluation by "
                f"{self.cfg.run.best_metric} ({self.measured_with}) replaces best.pt")
        return self.comparable(record)

    def restore(self, record) -> None:
        """Take a checkpoint's best record when it is better than the one known (resume)."""
        record = self.comparable(record) if self.ctx.is_main else None
        if record and (self.best is None or self.better(record["value"], self.best["value"])):
            self.best = record

    def keep_best(self, step: int, values: dict[str, float], state) -> None:
        """Write `state()` as best.pt, and best.json, if `run.best_metric` improved (rank 0)."""
        metric = self.cfg.run.best_metric
        value = values.get(metric)
        if metric == "none" or value is None or not math.isfinite(value):
            return
        if self.best is not None and not self.better(value, self.best["value"]):
            return
        record = {"metric": metric, "value": float(value), "step": step,
                  "measured_with": self.measured_with}
        try:
            checkpoint.write(self.run_dir / checkpoint.BEST, step, {**state(), "best": record})
            self.best = record
            write_text_atomic(self.run_dir / BEST_RECORD,
                                         json.dumps(record, indent=2) + "\n")
        except OSError as err:
            say(f"error: could not record step {step} as the best checkpoint ({err})")

