"""The default run, `python -m accelerated.train`, on several seeds: its final quality and its
wall time per seed, and their spread, written to one results file that the README and the
course quote.

    python benchmarks/default_run_seeds.py OUT.json [--seeds 0,1,2] [--out-dir runs/seeds]

Each seed runs alone, as a user would run it (`python -m accelerated.train --run.seed K`, every
other setting the preset's), one after the other, so the wall times are those of a quiet
machine if nothing else runs. Results are deterministic for one kind of CPU and one thread
count only: the file records both.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from accelerated.host import cpu_model, load_average
from accelerated.training.metrics_log import read_records

KEYS = ("score", "diversity", "well_formed", "class_match", "agreement", "symmetry", "fid")


def final_eval(run_dir: Path) -> dict:
    evals = [r for r in read_records(run_dir) if r["kind"] == "eval"]
    return {"step": evals[-1]["step"], **{k: round(evals[-1][k], 4) for k in KEYS},
            "twin": {k[5:]: [round(evals[-1][k], 3), round(evals[-1]["twin_chance/" + k[5:]], 3)]
                     for k in evals[-1] if k.startswith("twin/")},
            "evaluations": {r["step"]: {k: round(r[k], 4) for k in KEYS} for r in evals}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out-dir", type=Path, default=Path("runs/seeds"))
    args = parser.parse_args()
    runs = json.loads(args.out.read_text())["runs"] if args.out.exists() else {}
    for seed in args.seeds.split(","):
        name = f"default-seed{seed}"
        command = [sys.executable, "-m", "accelerated.train", "--run.seed", seed, "--run.out_dir",
                   str(args.out_dir), "--run.name", name, "--run.progress", "false"]
        load = load_average()
        start = time.perf_counter()
        done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
        wall = time.perf_counter() - start
        print(done.stdout, end="")
        runs[seed] = {"wall_minutes": round(wall / 60, 2), "load_average_before": round(load, 2),
                      "output": done.stdout.strip(), **final_eval(args.out_dir / name)}
    summary = {k: {"min": min(r[k] for r in runs.values()), "max": max(r[k] for r in runs.values()),
                   "mean": round(statistics.mean(r[k] for r in runs.values()), 4)}
               for k in (*KEYS, "wall_minutes")}
    result = {"command": "python -m accelerated.train --run.seed K",
              "machine": {"cpu": cpu_model(), "cores": os.cpu_count(),
                          "torch": torch.__version__, "torch_threads": torch.get_num_threads()},
              "runs": runs, "summary": summary}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
