"""Collect the design probes' runs into probes.json: each run's settings, data-set layout and
final evaluation (1,000 samples, the run's own last "eval" record).

    python benchmarks/results/builtin-design/collect.py LAYOUT RUN_DIR [RUN_DIR ...]

LAYOUT names the data-set layout the runs trained on (the runs themselves do not record it).
"""

import json
import sys
from pathlib import Path

KEYS = ("well_formed", "class_match", "agreement", "score", "diversity", "symmetry")
OUT = Path(__file__).with_name("probes.json")

layout, runs = sys.argv[1], [Path(p) for p in sys.argv[2:]]
found = json.loads(OUT.read_text()) if OUT.exists() else {}
for run in runs:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["kind"] == "eval"]
    cfg = json.loads((run / "config.json").read_text())
    found[run.name] = {
        "layout": layout,
        "seed": cfg["run"]["seed"],
        "settings": {"g_ch": cfg["model"]["g_ch"], "d_ch": cfg["model"]["d_ch"],
                     "d_minibatch_std": cfg["model"]["d_minibatch_std"],
                     "lr_d": cfg["optim"]["lr_d"], "lr_g": cfg["optim"]["lr_g"],
                     "ema": cfg["optim"]["ema"], "steps": cfg["run"]["steps"]},
        "evaluations": {r["step"]: {k: round(r[k], 4) for k in KEYS} for r in evals},
        "final": {k: round(evals[-1][k], 4) for k in KEYS},
    }
OUT.write_text(json.dumps(found, indent=1) + "\n")
print(json.dumps({k: v["final"] for k, v in found.items()}, indent=1))
