r"""An ablation's results, read from the runs' `metrics.jsonl`: per configuration, the spread over
seeds of the final and the best quality score, written as JSON, CSV and a Markdown table.

The score is the built-in data set's exact measure (`accelerated.data.builtin.quality`: the
fraction of samples that are well formed, of the asked class, with agreeing twins), logged as
"eval" records every `run.eval_every` steps. "Final" is the score at the last step, "best" the
highest score at any evaluation. Agreement (the twins match) and symmetry (correlation of the
two halves, no thresholds) are the long-range parts of the measure; diversity is low for a
generator that repeats a few images. Each run also keeps the final twin attention of its
attention layers (`accelerated.metrics.twins`), and the table shows its mean per layer.
Spread: mean, sample standard deviation over seeds (n - 1; none for one seed), min and max.
"""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

from accelerated.ablation import stats
from accelerated.ablation.runs import Run
from accelerated.training.metrics_log import read_records

SPREAD_OF = ("final_score", "best_score", "final_agreement", "final_symmetry", "final_diversity")
"""The per-run values whose spread the table shows."""


def evals(folder: Path) -> list[dict[str, float]]:
    """The run's "eval" records, by step. A resumed run logs again the steps after its last
    checkpoint: the later record of a step wins."""
    by_step = {}
    for record in read_records(folder):
        if record.get("kind") == "eval":
            by_step[record["step"]] = {k: v for k, v in record.items() if k not in ("kind", "time")}
    return [by_step[s] for s in sorted(by_step)]


def steps_per_second(folder: Path) -> float | None:
    """Training throughput of the run, evaluations included: steps over seconds between
    consecutive "train" records (pairs across a resume, where the clock restarts, are left out)."""
    steps = seconds = 0.0
    previous = None
    for record in read_records(folder):
        if record.get("kind") != "train":
            continue
        if previous and record["step"] > previous["step"] and record["time"] > previous["time"]:
            steps += record["step"] - previous["step"]
            seconds += record["time"] - previous["time"]
        previous = record
    return steps / seconds if seconds else None


def run_result(run: Run) -> dict:
    """One finished run: its final and best score, final agreement and symmetry, throughput,
    evaluations."""
    records = evals(run.folder)
    final = records[-1]
    best = max(records, key=lambda r: r["score"])
    return {
        "name": run.name, "seed": run.seed, "final_step": final["step"],
        "final_score": final["score"], "best_score": best["score"], "best_step": best["step"],
        "final_agreement": final["agreement"], "final_symmetry": final["symmetry"],
        "final_diversity": final["diversity"],
        "final_twin": {k[5:]: (v, final[f"twin_chance/{k[5:]}"])
                       for k, v in final.items() if k.startswith("twin/")},
        "steps_per_second": steps_per_second(run.folder),
        "evals": records,
    }


def spread(values: list[float]) -> dict[str, float | None]:
    return {"mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else None,
            "min": min(values), "max": max(values)}


def summarise(runs: list[Run]) -> list[dict]:
    """One row per configuration, over its finished runs (configurations with none are left
    out), in the order of `runs`."""
    rows: dict[str, dict] = {}
    for run in runs:
        if run.state() != "done":
            continue
        row = rows.setdefault(run.variant.name, {
            "config": run.variant.name, "summary": run.variant.summary,
            "paper": run.variant.paper, "changes": run.variant.changes, "runs": []})
        row["runs"].append(run_result(run))
    for row in rows.values():
        row["seeds"] = len(row["runs"])
        for key in SPREAD_OF:
            row[key] = spread([r[key] for r in row["runs"]])
        layers = sorted(set.intersection(*(set(r["final_twin"]) for r in row["runs"])))
        row["final_twin"] = {layer: [statistics.fmean(r["final_twin"][layer][i]
                                                      for r in row["runs"]) for i in (0, 1)]
                             for layer in layers}
        rates = [r["steps_per_second"] for r in row["runs"] if r["steps_per_second"]]
        row["steps_per_second"] = statistics.fmean(rates) if rates else None
    return list(rows.values())


def flat(row: dict) -> dict[str, object]:
    """A row as one level of columns (for CSV)."""
    out = {"config": row["config"], "summary": row["summary"], "seeds": row["seeds"]}
    for key in SPREAD_OF:
        out.update({f"{key}_{stat}": value for stat, value in row[key].items()})
    for layer, (mass, chance) in row.get("final_twin", {}).items():
        out[f"twin_{layer}"], out[f"twin_chance_{layer}"] = mass, chance
    out["steps_per_second"] = row["steps_per_second"]
    return out


def _cell(s: dict[str, float | None]) -> str:
    std = "" if s["std"] is None else f" ± {s['std']:.3f}"
    return f"{s['mean']:.3f}{std} ({s['min']:.3f}–{s['max']:.3f})"


def _twins(row: dict) -> str:
    return ", ".join(f"{layer} {mass:.2f} ({chance:.2f})"
                     for layer, (mass, chance) in row.get("final_twin", {}).items())


def markdown(rows: list[dict]) -> str:
    """The table: mean ± std (min–max) over seeds; twin attention: mean (chance)."""
    lines = ["| configuration | what changes | seeds | final score | best score "
             "| final agreement | final symmetry | final diversity | twin attention (chance) "
             "| steps/s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        rate = "" if row["steps_per_second"] is None else f"{row['steps_per_second']:.2f}"
        lines.append(f"| {row['config']} | {row['summary']} | {row['seeds']} | "
                     + " | ".join(_cell(row[key]) for key in SPREAD_OF)
                     + f" | {_twins(row)} | {rate} |")
    return "\n".join(lines) + "\n"


def write(rows: list[dict], out: Path, meta: dict) -> dict[str, Path]:
    """`ablation.json` (rows, runs, evaluations and `meta`), `ablation.csv`, `ablation.md` (the
    table, then the tests of `meta["comparisons"]`, if any)."""
    paths = {ext: out / f"ablation.{ext}" for ext in ("json", "csv", "md")}
    paths["json"].write_text(json.dumps({**meta, "configurations": rows}, indent=1) + "\n")
    with open(paths["csv"], "w", newline="") as fh:
        columns = list(dict.fromkeys(key for row in rows for key in flat(row)))
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(flat(row) for row in rows)
    tests = [stats.markdown(found, metric, rows[0]["config"])
             for metric, found in meta.get("comparisons", {}).items() if found]
    paths["md"].write_text("\n".join([markdown(rows), *tests]))
    return paths
