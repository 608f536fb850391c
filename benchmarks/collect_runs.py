"""Collect finished training runs of the built-in data set into one results file: each run's
settings, every evaluation it logged and its final one, and, for a run that kept an EMA of G,
the raw generator's quality on the same evaluation noise (an EMA changes only which generator is
evaluated, so one run measures both). A summary gives each label's spread over seeds.

    python benchmarks/collect_runs.py OUT.json LABEL RUN_DIR [RUN_DIR ...]

LABEL names what the runs have in common (a recipe, a data-set layout); runs already in OUT.json
are kept, a run of the same name is replaced.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import torch

from accelerated import checkpoint
from accelerated import config as C
from accelerated.data import builtin
from accelerated.models import Generator, generate
from accelerated.training.observe import NOISE_EVAL, fixed_noise

KEYS = ("well_formed", "class_match", "agreement", "score", "diversity", "symmetry")
SETTINGS = ("model.g_ch", "model.d_ch", "model.d_minibatch_std", "optim.batch_size",
            "optim.lr_d", "optim.lr_g", "optim.ema", "optim.ema_decay", "optim.ema_start",
            "run.steps")  # fmt: skip


def raw_generator(run: Path) -> dict | None:
    """Quality of the raw G of the run's newest checkpoint, on the run's evaluation noise (None
    for a run without an EMA: its evaluations are the raw G's already)."""
    _, state = checkpoint.latest(run)
    cfg = C.from_dict(state["config"])
    if not cfg.optim.ema:
        return None
    n = cfg.run.eval_samples
    classes = torch.arange(n) % cfg.model.num_classes
    z, y = fixed_noise(cfg, torch.device("cpu"), NOISE_EVAL, n, classes)
    G = Generator(cfg.model)
    G.load_state_dict(state["G"])
    quality = builtin.quality(generate(G, z, y), y)
    return {"step": state["step"], **{k: round(quality[k], 4) for k in KEYS}}


def collect(run: Path, label: str) -> dict:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["kind"] == "eval"]
    cfg = json.loads((run / "config.json").read_text())
    return {
        "label": label,
        "seed": cfg["run"]["seed"],
        "settings": {key: cfg[key.split(".")[0]][key.split(".")[1]] for key in SETTINGS},
        "evaluations": {r["step"]: {k: round(r[k], 4) for k in KEYS} for r in evals},
        "final": {"step": evals[-1]["step"], **{k: round(evals[-1][k], 4) for k in KEYS}},
        "raw_generator": raw_generator(run),
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
