r"""A run's curves as one PNG, `curves.png` in the run folder, redrawn at every evaluation: the
losses, each attention layer's $\gamma$, and what the evaluations measured (the built-in data
set's score and diversity, the twin attention of each layer against its chance level, FID).
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

FILE = "curves.png"


def _series(records: list[dict], kind: str, key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of `key` in the records of `kind`; a step logged twice (a resumed run
    redoes the steps after its checkpoint) keeps its later value."""
    by_step = {r["step"]: r[key] for r in records if r.get("kind") == kind and key in r}
    steps = sorted(by_step)
    return steps, [by_step[s] for s in steps]


def _keys(records: list[dict], kind: str, prefix: str) -> list[str]:
    return sorted({k for r in records if r.get("kind") == kind for k in r if k.startswith(prefix)})


def panels(records: list[dict]) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """[(title, [(label, kind, key), ...]), ...]: the panels the records have data for."""
    wanted = [
        ("losses (hinge)", [("D", "train", "loss_d"), ("G", "train", "loss_g")]),
        ("attention gamma", [(k[6:], "train", k) for k in _keys(records, "train", "gamma/")]),
        ("quality (built-in data)", [(k, "eval", k) for k in ("score", "diversity", "agreement")]),
        ("twin attention (dotted: chance)",
         [(k[5:], "eval", k) for k in _keys(records, "eval", "twin/")]
         + [(f"{k[12:]} chance", "eval", k) for k in _keys(records, "eval", "twin_chance/")]),
        ("FID (lower is better)", [("FID", "eval", "fid")]),
    ]
    found = []
    for title, lines in wanted:
        lines = [line for line in lines if _series(records, line[1], line[2])[0]]
        if lines:
            found.append((title, lines))
    return found


def draw(records: list[dict], run_dir: Path) -> Path | None:
    """Draw a run's records (`accelerated.training.metrics_log.read_records`) to
    `run_dir/curves.png`; None when nothing is logged."""
    chosen = panels(records)
    if not chosen:
        return None
    fig = Figure(figsize=(4.2 * len(chosen), 3.4), layout="constrained")
    for ax, (title, lines) in zip(fig.subplots(1, len(chosen), squeeze=False)[0], chosen,
                                  strict=True):
        colours: dict[str, str] = {}  # a layer's chance line takes the colour of its layer
        for label, kind, key in lines:
            steps, values = _series(records, kind, key)
            layer = label.removesuffix(" chance")
            (line,) = ax.plot(steps, values, ":" if layer != label else "-",
                              color=colours.get(layer), label=label,
                              marker="o" if kind == "eval" else None, markersize=3)
            colours.setdefault(layer, line.get_color())
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    path = Path(run_dir) / FILE
    fig.savefig(path, dpi=100)
    return path
