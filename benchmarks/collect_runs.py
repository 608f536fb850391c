"""Collect finished training runs of the built-in data set into one results file: each run's
settings, every evaluation it logged (with the measure of the code that trained it), its final
generator measured again with today's measure on the run's evaluation noise (`final`; equal
to its last log when the measure has not changed), for a run that kept an EMA of G the raw
generator's quality on the same evaluation noise (an EMA changes only which generator is
evaluated, so one run measures both), and where the final generator's well-formed objects sit
(rows and hue bins per class). A summary gives each label's spread over seeds.

    python benchmarks/collect_runs.py OUT.json LABEL RUN_DIR [RUN_DIR ...]

LABEL names what the runs have in common (a recipe, a data-set layout); runs already in OUT.json
are kept, a run of the same name is replaced.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

from accelerated import checkpoint
from accelerated import config as C
from accelerated.data import builtin
from accelerated.models import Generator, generate
from accelerated.training.metrics_log import read_records
from accelerated.training.observe import NOISE_EVAL, fixed_noise

KEYS = ("well_formed", "class_match", "agreement", "score", "diversity", "symmetry")
SETTINGS = ("model.g_ch", "model.d_ch", "model.d_minibatch_std", "optim.batch_size",
            "optim.lr_d", "optim.lr_g", "optim.ema", "optim.ema_decay", "optim.ema_start",
            "run.steps")  # fmt: skip


def final_samples(run: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Images and labels of the newest checkpoint's generators on the run's evaluation noise:
    {"G": ...} and, for a run with an EMA, {"G_ema": ...} (its evaluations are the EMA's)."""
    _, state = checkpoint.latest(run)
    cfg = C.from_dict(state["config"])
    n = cfg.run.eval_samples
    classes = torch.arange(n) % cfg.model.num_classes
    z, y = fixed_noise(cfg, torch.device("cpu"), NOISE_EVAL, n, classes)
    found = {}
    for key in ("G", "G_ema") if cfg.optim.ema else ("G",):
        G = Generator(cfg.model)
        G.load_state_dict(state[key])
        found[key] = generate(G, z, y), y
    return found


def coverage(images: torch.Tensor, labels: torch.Tensor) -> dict:
    """Per class, how many well-formed left objects sit in each row and each hue bin: where a
    generator's diversity goes missing."""
    x = images.numpy().transpose(0, 2, 3, 1)
    left = builtin._decode_half(x[:, :, : x.shape[2] // 2])
    found = {}
    for k, name in enumerate(builtin.CLASS_NAMES):
        ok = left["ok"] & (labels.numpy() == k)
        found[name] = {
            "rows": np.bincount(left["row"][ok], minlength=builtin.num_rows(x.shape[1])).tolist(),
            "hue_bins": np.bincount(builtin.hue_bin(left["hue"][ok]),
                                    minlength=builtin.HUE_BINS).tolist(),
        }
    return found


def collect(run: Path, label: str) -> dict:
    evals = [r for r in read_records(run) if r["kind"] == "eval"]
    cfg = json.loads((run / "config.json").read_text())
    samples = final_samples(run)
    evaluated = samples["G_ema" if "G_ema" in samples else "G"]

    def measured(images_and_labels) -> dict:
        quality = builtin.quality(*images_and_labels)
        return {"step": evals[-1]["step"], **{k: round(quality[k], 4) for k in KEYS}}

    return {
        "label": label,
        "seed": cfg["run"]["seed"],
        "settings": {key: cfg[key.split(".")[0]][key.split(".")[1]] for key in SETTINGS},
        "evaluations": {r["step"]: {k: round(r[k], 4) for k in KEYS} for r in evals},
        "final": measured(evaluated),
        "raw_generator": measured(samples["G"]) if "G_ema" in samples else None,
        "coverage": coverage(*evaluated),
    }


def summary(runs: dict) -> dict:
    """Per label: the seeds, and min / mean / max of the final score and diversity."""
    labels = {}
    for run in runs.values():
        labels.setdefault(run["label"], []).append(run)
    return {label: {"runs": sorted(r["seed"] for r in group),
                    **{k: {"min": min(r["final"][k] for r in group),
                           "mean": round(statistics.mean(r["final"][k] for r in group), 4),
                           "max": max(r["final"][k] for r in group)}
                       for k in ("score", "diversity")}}
            for label, group in labels.items()}


def main() -> None:
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    out, label, runs = Path(sys.argv[1]), sys.argv[2], [Path(p) for p in sys.argv[3:]]
    found = json.loads(out.read_text())["runs"] if out.exists() else {}
    for run in runs:
        found[run.name] = collect(run, label)
    result = {"runs": found, "summary": summary(found)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["summary"], indent=1))


if __name__ == "__main__":
    main()
