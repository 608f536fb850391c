"""Collect every run under /work/recipe2/runs: its settings that differ from the builtin preset,
and every evaluation (score, diversity, agreement, well_formed, symmetry) with its step and time.
Writes runs.json and runs.csv to the folder given (default: .)."""

import csv
import json
import sys
import tomllib
from pathlib import Path

RUNS = Path("/work/recipe2/runs")
KEYS = ("score", "diversity", "agreement", "well_formed", "symmetry")
DEFAULT = {
    "batch_size": 64,
    "lr_g": 2e-4,
    "lr_d": 8e-4,
    "beta1": 0.0,
    "beta2": 0.999,
    "d_steps": 1,
    "ema": False,
    "g_ch": 16,
    "d_ch": 16,
    "z_dim": 128,
    "steps": 2500,
}
out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
runs, rows = [], []
for d in sorted(RUNS.iterdir()):
    if not (d / "metrics.jsonl").exists():
        continue
    cfg = tomllib.loads((d / "config.toml").read_text())
    flat = {**cfg["model"], **cfg["optim"], **cfg["run"]}
    changes = {k: flat[k] for k in DEFAULT if flat.get(k) != DEFAULT[k]}
    lines = [json.loads(l) for l in (d / "metrics.jsonl").open()]
    train = [l for l in lines if l["kind"] == "train"]
    evals = [
        {"step": l["step"], "time_s": round(l["time"], 1), **{k: round(l[k], 4) for k in KEYS}}
        for l in lines
        if l["kind"] == "eval"
    ]
    runs.append(
        {
            "run": d.name,
            "seed": flat["seed"],
            "changes": changes,
            "steps_done": train[-1]["step"] if train else 0,
            "evals": evals,
        }
    )
    for e in evals:
        rows.append(
            {
                "run": d.name,
                "seed": flat["seed"],
                "changes": " ".join(f"{k}={v}" for k, v in changes.items()),
                **e,
            }
        )
(out / "runs.json").write_text(json.dumps(runs, indent=1) + "\n")
with (out / "runs.csv").open("w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=["run", "seed", "changes", "step", "time_s", *KEYS])
    w.writeheader()
    w.writerows(rows)
for r in runs:
    last = r["evals"][-1] if r["evals"] else {}
    print(
        f"{r['run']:24s} {r['steps_done']:5d} {json.dumps(r['changes'])[:70]:70s}",
        " ".join(f"{k[:4]} {last.get(k, float('nan')):.3f}" for k in KEYS),
    )
