r"""The ablation's figure: quality vs training step, one colour per configuration, the mean over
seeds as a line and the min-max over seeds as a band. One panel for the score, one for the
symmetry of the twins, and one for FID when the runs' evaluations report it."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

PANELS = (("score", "quality score (higher is better)"),
          ("symmetry", "symmetry: left-right correlation (higher is better)"),
          ("fid", "FID (lower is better)"))


def curve(row: dict, metric: str) -> tuple[list[int], list[float], list[float], list[float]]:
    """Steps evaluated in every seed of `row`, and the mean, min and max of `metric` there."""
    per_seed = [{e["step"]: e[metric] for e in run["evals"] if metric in e} for run in row["runs"]]
    steps = sorted(set.intersection(*(set(s) for s in per_seed)))
    values = [[s[step] for s in per_seed] for step in steps]
    return (steps, [sum(v) / len(v) for v in values], [min(v) for v in values],
            [max(v) for v in values])


def figure(rows: list[dict], path: Path, title: str) -> Path:
    """Draw `rows` (from `results.summarise`) to the PNG `path`."""
    panels = [(m, label) for m, label in PANELS
              if all(curve(row, m)[0] for row in rows)]
    fig = Figure(figsize=(6 * len(panels), 5), layout="constrained")
    for ax, (metric, label) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels,
                                   strict=True):
        for i, row in enumerate(rows):
            steps, mean, low, high = curve(row, metric)
            colour = f"C{i}"
            ax.plot(steps, mean, color=colour, marker="o", markersize=3,
                    label=f"{row['config']} (n={row['seeds']})")
            ax.fill_between(steps, low, high, color=colour, alpha=0.15, linewidth=0)
        ax.set_xlabel("training step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.suptitle(title)
    fig.savefig(path, dpi=120)
    return path
